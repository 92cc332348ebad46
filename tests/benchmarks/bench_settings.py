"""Settings for the migrate_schemas benchmark: settings.dev plus a bench-only tenant app whose
migration history is chosen per run, and a switch back to stock django-tenants behaviour.

    BENCH_MIGRATION_STAGE=1   benchapp at 0001 (a small table)
    BENCH_MIGRATION_STAGE=2   benchapp adds 0002 (a column with a default, and an index)
    BENCH_EXECUTOR=stock      django-tenants' own executor selection, which visits every schema
                              (default: the project's executor, which skips schemas at head)
"""

import os

from settings.dev import *  # noqa: F403
from settings.dev import GET_EXECUTOR_FUNCTION, INSTALLED_APPS, TENANT_APPS

BENCH_APP = "tests.benchmarks.benchapp"
BENCH_MIGRATION_STAGE = os.environ.get("BENCH_MIGRATION_STAGE", "1")
if BENCH_MIGRATION_STAGE not in {"1", "2"}:
    raise ValueError(f"BENCH_MIGRATION_STAGE={BENCH_MIGRATION_STAGE!r}: use 1 or 2")

TENANT_APPS = [*TENANT_APPS, BENCH_APP]
INSTALLED_APPS = [*INSTALLED_APPS, BENCH_APP]
MIGRATION_MODULES = {"benchapp": f"{BENCH_APP}.migrations.stage{BENCH_MIGRATION_STAGE}"}

if os.environ.get("BENCH_EXECUTOR", "project") == "stock":
    GET_EXECUTOR_FUNCTION = "django_tenants.migration_executors.get_executor"
