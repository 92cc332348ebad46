"""migrate_schemas over 200 tenant schemas (plus the template) with the subprocess executor,
two in parallel: with nothing to migrate (the project's pending-only executor, and stock
django-tenants for comparison) and with one new tenant migration. Records wall time and the peak
RSS of the manage.py process tree.

    python -m tests.benchmarks.bench_migrate_schemas --output result.json

BENCH_MIGRATE_TENANTS overrides the number of tenants (default 200) for a quick try.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.benchmarks.bulk import create_tenants
from tests.benchmarks.common import (
    ROOT,
    MemoryPeak,
    Result,
    RssSampler,
    bench_database,
    django_setup,
    mib,
    migrate_public_schema,
    output_path,
    say,
)

TENANTS = int(os.environ.get("BENCH_MIGRATE_TENANTS", "200"))
PARALLEL = 2
SETTINGS = "tests.benchmarks.bench_settings"
NEW_MIGRATION = ("benchapp", "0002_note_priority")


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    stage: str
    executor: str


SCENARIOS = (
    Scenario(
        "noop_pending_only",
        "nothing to migrate, project executor (skips schemas at head)",
        "1",
        "project",
    ),
    Scenario(
        "noop_stock", "nothing to migrate, stock django-tenants (visits every schema)", "1", "stock"
    ),
    Scenario("one_new_migration", "one new tenant migration, project executor", "2", "project"),
)


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    memory: MemoryPeak
    log: Path


def all_schemas() -> list[str]:
    from django_tenants.utils import get_public_schema_name

    from tenants.models import Tenant

    return [get_public_schema_name(), *Tenant.objects.values_list("schema_name", flat=True)]


def schemas_with(migration: tuple[str, str], schemas: list[str]) -> int:
    from tenants.migration_state import applied_migrations

    return sum(migration in applied for applied in applied_migrations(schemas).values())


# --- the timed runs -----------------------------------------------------------------------------


def run_migrate_schemas(scenario: Scenario, log: Path) -> Run:
    """``manage.py migrate_schemas`` as a subprocess, sampling the RSS of its process tree."""
    env = {
        **os.environ,
        "BENCH_MIGRATION_STAGE": scenario.stage,
        "BENCH_EXECUTOR": scenario.executor,
    }
    command = [
        sys.executable,
        str(ROOT / "manage.py"),
        "migrate_schemas",
        "--noinput",
        "--executor=subprocess",
        "--parallel",
        str(PARALLEL),
        f"--settings={SETTINGS}",
    ]
    log.parent.mkdir(parents=True, exist_ok=True)
    cpu_before = children_cpu_seconds()
    with log.open("w") as stream:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT
        )
        with RssSampler(pid=process.pid) as sampler:
            returncode = process.wait()
        seconds = time.perf_counter() - started
    if returncode != 0:
        raise RuntimeError(f"migrate_schemas failed (exit {returncode}); see {log}")
    cpu_seconds = children_cpu_seconds() - cpu_before
    return Run(seconds=seconds, cpu_seconds=cpu_seconds, memory=sampler.peak, log=log)


def children_cpu_seconds() -> float:
    """User + system CPU of every finished descendant (manage.py and the migrate processes it
    waited for); unlike wall time it does not grow when other work competes for the CPUs."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tenant_schemas_visited(log: Path) -> int:
    """Tenant schemas migrate ran in: each one logs "=== Starting migration" (verbosity 1)."""
    lines = log.read_text().splitlines()
    return sum("=== Starting migration" in line and ":public]" not in line for line in lines)


def record(result: Result, scenario: Scenario, run: Run, schemas: int) -> None:
    visited = tenant_schemas_visited(run.log)
    result.add(f"{scenario.key}: tenant schemas visited", visited, "schemas")
    result.add(f"{scenario.key}: total", run.seconds, "s")
    result.add(f"{scenario.key}: per schema", run.seconds / schemas, "s")
    result.add(f"{scenario.key}: CPU, manage.py processes", run.cpu_seconds, "s")
    result.add(f"{scenario.key}: peak RSS, process tree", mib(run.memory.total_rss_bytes), "MiB")
    result.add(f"{scenario.key}: peak RSS, one process", mib(run.memory.single_rss_bytes), "MiB")
    result.details["scenarios"][scenario.key] = {
        "label": scenario.label,
        "tenant_schemas_visited": visited,
        "seconds": run.seconds,
        "seconds_per_schema": run.seconds / schemas,
        "cpu_seconds": run.cpu_seconds,
        "peak_total_rss_mib": mib(run.memory.total_rss_bytes),
        "peak_single_rss_mib": mib(run.memory.single_rss_bytes),
        "max_processes": run.memory.max_processes,
        "rss_samples": run.memory.samples,
        "log": str(run.log.relative_to(ROOT)) if run.log.is_relative_to(ROOT) else str(run.log),
    }


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="migrate_schemas", details={"scenarios": {}, "parallel": PARALLEL})
    os.environ["BENCH_MIGRATION_STAGE"] = "1"
    with bench_database("migrate_schemas") as database_url:
        django_setup(SETTINGS)
        from tenants.services import template_schema_ensure

        say("migrating the public schema and the template at stage 1 (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        say(f"creating {TENANTS} tenants from the template (not timed)")
        result.details["setup_seconds"] = create_tenants(
            database_url, [f"bench-{index:04d}" for index in range(TENANTS)], progress=say
        )
        schemas = all_schemas()
        tenant_schemas = len(schemas) - 1
        result.details["tenant_schemas"] = tenant_schemas
        say(f"{tenant_schemas} tenant schemas, the template included")
        from django.db import connections

        connections.close_all()
        for scenario in SCENARIOS:
            say(f"migrate_schemas: {scenario.label} ...")
            run = run_migrate_schemas(
                scenario, output.with_name(f"{output.stem}-{scenario.key}.log")
            )
            say(f"  {run.seconds:.1f} s, peak RSS {mib(run.memory.total_rss_bytes):.0f} MiB")
            record(result, scenario, run, tenant_schemas)
        migrated = schemas_with(NEW_MIGRATION, schemas)
        result.details["schemas_with_new_migration"] = migrated
        if migrated != len(schemas):
            raise RuntimeError(f"only {migrated} of {len(schemas)} schemas have {NEW_MIGRATION}")
        say(f"check: all {migrated} schemas (public included) recorded {'.'.join(NEW_MIGRATION)}")
    result.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
