"""A tenant app that exists only for the migrate_schemas benchmark (see bench_settings.py)."""
