"""Benchmarks, run with `make bench` (tests/benchmarks/run.py); never collected by pytest.

Each benchmark is a module ``bench_<name>.py`` run in its own process against its own database
(``<dbname>_bench_<name>``), created at the start and dropped at the end.
"""
