"""A tenant app that exists only for tests/tenants/test_migration_runs.py (see migrate_settings.py):
its migration history is chosen per run, so a real ``migrate_schemas`` has something to do."""
