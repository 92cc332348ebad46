"""Settings for the ``manage.py migrate_schemas`` processes tests/tenants/test_migration_runs.py
starts: settings.dev plus a test-only tenant app whose migration history is chosen per run.

    MIGRATEAPP_STAGE=1   migrateapp at 0001 (a small table)
    MIGRATEAPP_STAGE=2   + 0002 (sleeps MIGRATEAPP_SLEEP seconds per schema, adds a column)
    MIGRATEAPP_STAGE=3   + 0003 (a unique constraint: fails where titles repeat)
"""

import os

from settings.dev import *  # noqa: F403
from settings.dev import INSTALLED_APPS, TENANT_APPS

MIGRATE_APP = "tests.tenants.migrateapp"
MIGRATEAPP_STAGE = os.environ.get("MIGRATEAPP_STAGE", "1")
if MIGRATEAPP_STAGE not in {"1", "2", "3"}:
    raise ValueError(f"MIGRATEAPP_STAGE={MIGRATEAPP_STAGE!r}: use 1, 2 or 3")

TENANT_APPS = [*TENANT_APPS, MIGRATE_APP]
INSTALLED_APPS = [*INSTALLED_APPS, MIGRATE_APP]
MIGRATION_MODULES = {"migrateapp": f"{MIGRATE_APP}.migrations.stage{MIGRATEAPP_STAGE}"}
# Summaries often enough for a run of a few seconds to print some.
MIGRATION_PROGRESS_SUMMARY_SECONDS = float(
    os.environ.get("MIGRATION_PROGRESS_SUMMARY_SECONDS", "1")
)
