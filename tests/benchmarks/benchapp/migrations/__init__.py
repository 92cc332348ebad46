"""Migration histories of benchapp, one package per stage; bench_settings.py picks one."""
