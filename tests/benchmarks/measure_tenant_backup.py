"""Per-tenant backup and restore at scale (issue 20, item 3), on a database that already holds the
tenants: one tenant backed up by each method (``copy`` and ``pg_dump``), dropped and restored,
``BENCH_REPEATS`` times (default 3, the median reported), plus where pg_dump's time goes (its
catalog-wide queries, timed by the server when ``BENCH_PG_LOG`` names a readable server log).

Not a run.py benchmark (those build their own database): point DATABASE_URL at a database that
``bench_tenant_scale`` kept (BENCH_KEEP_DATABASE=1), or a copy of one
(``CREATE DATABASE x TEMPLATE verdant_bench_tenant_scale``), and use the settings it was made with:

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/verdant_bench_tenant_scale \\
    DJANGO_SETTINGS_MODULE=tests.benchmarks.bench_settings \\
        .venv/bin/python -m tests.benchmarks.measure_tenant_backup --output result.json

The tenant measured is the one in the middle of the registry (BENCH_SLUG to choose). It is
dropped and restored: it comes back with the same data; do not run this on a database that serves.
BENCH_BACKUP_ONLY=1 times the backups alone: no migration of the tenant or the template, no drop,
no restore (the one possible write is the template's stored DDL script, if it is missing — the row
provisioning would store), so it can run on a database someone else is using.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.common import django_setup, output_path, say

REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
BACKUP_ONLY = os.environ.get("BENCH_BACKUP_ONLY") == "1"


def pick_slug() -> str:
    from tenants.models import Tenant

    chosen = os.environ.get("BENCH_SLUG")
    if chosen:
        return chosen
    slugs = list(
        Tenant.objects.filter(is_template=False).order_by("slug").values_list("slug", flat=True)
    )
    return slugs[len(slugs) // 2]


def catalog_size() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM tenants_tenant WHERE NOT is_template), "
            "(SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'p')), "
            "(SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_depend), "
            "(SELECT count(*) FROM pg_type)"
        )
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(("tenants", "tables", "pg_class", "pg_depend", "pg_type"), row, strict=True))


def bring_current(slug: str) -> None:
    """The template and the measured tenant at the code's latest migration (not timed): a restore
    then migrates nothing, and the copy method applies."""
    from django.core.management import call_command

    from tenants.services import schema_name_for, template_schema_ensure

    template_schema_ensure()
    call_command(
        "migrate_schemas", schema_name=schema_name_for(slug), interactive=False, verbosity=0
    )


def round_trip(slug: str, method: str, workdir: Path) -> tuple[float, float, int]:
    from tenants.backup import tenant_backup, tenant_restore
    from tenants.services import tenant_drop

    path = workdir / f"{slug}.{method}.tenant"
    backup = tenant_backup(slug=slug, path=path, method=method)
    assert backup.method == method, backup
    if BACKUP_ONLY:
        return backup.seconds, float("nan"), backup.size_bytes
    tenant_drop(slug=slug)
    restore = tenant_restore(slug=slug, path=path)
    assert not restore.migrated, "the tenant was behind the code: bring_current first"
    return backup.seconds, restore.seconds, backup.size_bytes


def pg_dump_breakdown(schema: str, log: Path) -> list[dict[str, Any]]:
    """pg_dump --schema once with the server logging every statement of its session over 5 ms:
    the slowest ones, which read the whole catalog."""
    from tenants.pg_tools import find_pg_tool, libpq_env

    tool = find_pg_tool("pg_dump")
    assert tool is not None
    start = log.stat().st_size
    env = {**libpq_env(), "PGOPTIONS": "-c log_min_duration_statement=5"}
    with tempfile.TemporaryDirectory(prefix="verdant-backup-bench-") as scratch:
        started = time.perf_counter()
        subprocess.run(
            [str(tool), f"--schema={schema}", "--format=custom", f"--file={scratch}/dump"],
            env=env,
            check=True,
            capture_output=True,
        )
        total = time.perf_counter() - started
    with log.open("rb") as handle:
        handle.seek(start)
        lines = handle.read().decode(errors="replace").splitlines()
    found: list[tuple[float, str]] = []
    for line in lines:
        if "duration: " in line and "statement: " in line:
            ms = float(line.split("duration: ")[1].split(" ms")[0])
            found.append((ms, line.split("statement: ", 1)[1][:100]))
    found.sort(reverse=True)
    return [
        {"total_ms": round(total * 1000, 1)},
        *({"ms": ms, "statement": statement} for ms, statement in found[:8]),
    ]


def main() -> int:
    output = output_path(__doc__ or "")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    django_setup(os.environ.get("DJANGO_SETTINGS_MODULE", "tests.benchmarks.bench_settings"))
    from tenants.services import schema_name_for

    slug = pick_slug()
    result: dict[str, Any] = {"slug": slug, "catalog": catalog_size(), "repeats": REPEATS}
    say(f"tenant {slug}; {result['catalog']}")
    if not BACKUP_ONLY:
        bring_current(slug)
    result["load_average_before"] = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="verdant-backup-bench-") as scratch:
        for method in ("copy", "pg_dump"):
            samples = [round_trip(slug, method, Path(scratch)) for _ in range(REPEATS)]
            result[method] = {
                "backup_s": statistics.median(s[0] for s in samples),
                "restore_s": statistics.median(s[1] for s in samples),
                "backup_samples": [round(s[0], 3) for s in samples],
                "restore_samples": [round(s[1], 3) for s in samples],
                "bytes": samples[-1][2],
            }
            say(f"{method}: {result[method]}")
    result["load_average_after"] = os.getloadavg()
    log = os.environ.get("BENCH_PG_LOG")
    if log:
        result["pg_dump_slowest_statements"] = pg_dump_breakdown(schema_name_for(slug), Path(log))
    output.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
