"""Tenant scale (issue 20, item 1): provisions tenants one by one with the project's own code
(tenants.services.tenant_provision, the template clone provision_tenant runs) up to N, and at each
checkpoint measures what grows with the tenant count:

- provisioning p50 / p95 of the tenants added since the previous checkpoint;
- ``migrate_schemas --tenant --executor=subprocess --parallel 2`` as the Helm migration Job runs
  it: with nothing to migrate, and with one new tenant migration (the migrate_schemas benchmark's
  benchapp 0002: a column with a default and an index), undone afterwards by SQL, not timed;
- ``check_schema_drift`` (in-process, fresh connection);
- ``backup_tenant`` of one tenant, then ``drop_tenant`` (not timed) and ``restore_tenant`` of it;
- the whole-database backup path: ``pg_dump --schema-only`` of the benchmark database (FAIL with
  PostgreSQL's message, e.g. "out of shared memory", when it fails) and ``pg_basebackup`` of the
  cluster into a temporary directory (FAIL with its message when, e.g., pg_hba.conf refuses it);
- the reminder sweep (clinical.tasks.reminders_sweep run in-process on a fresh connection);
- request latency of GET /api/v1/clinical/patients/ through gunicorn (one sync worker, so one
  database connection): first-touch (a tenant this connection has not served yet) and warm
  (the same tenants again).

After the last checkpoint, one connection serves the list endpoint (in-process, Django's test
client, a real access token) for every tenant in turn; after K tenants it reports the backend's
private memory (RssAnon from /proc/<pid>/status; the benchmark must run on the database host with
permission to read it) and the sum of ``pg_backend_memory_contexts`` (all contexts, and
CacheMemoryContext with its children: relcache / catcache).

Every metric measured at three or more tenant counts (or K) is fitted by least squares, linear in
N (or K), and extrapolated to 10,000: rows named "projected", with the fit's r², are not
measurements. Fits through fewer points are in the JSON only.

    BENCH_TENANTS=2000 python -m tests.benchmarks.bench_tenant_scale --output result.json

Environment: BENCH_TENANTS (default 2000); BENCH_CHECKPOINTS (comma-separated tenant counts,
default 10,100,500,1000,2000,5000,10000 up to BENCH_TENANTS, which is always one);
BENCH_MEMORY_K (same form, for the memory points); BENCH_FIRST_TOUCH (tenants sampled per
checkpoint, default 50) and BENCH_WARM_REPEATS (warm requests per sampled tenant, default 4);
BENCH_NEW_MIGRATION ("all", "0", or the checkpoints that time it: at 2,000 tenants one new
migration is the longest step); BENCH_BASEBACKUP=0 skips pg_basebackup. Connections live for a
day (DB_CONN_MAX_AGE=86400) in the benchmark and its gunicorn, so nothing but the code under test
closes them: the memory figures are those of a connection behind PgBouncer in session mode.

The schemas carry benchapp's one extra table (tests/benchmarks/bench_settings.py), so that a new
migration can be applied and undone: a tenant has one table (with its key index and sequence)
more than in production.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.benchmarks.common import (
    ROOT,
    Result,
    bench_database,
    django_setup,
    http_json,
    mib,
    migrate_public_schema,
    output_path,
    pass_fail,
    say,
    summarize,
    timed,
)
from tests.benchmarks.serving import free_port, gunicorn

DEFAULT_TENANTS = 2000
DEFAULT_POINTS = (10, 100, 500, 1000, 2000, 5000, 10_000)
PROJECT_TO = 10_000
SETTINGS = "tests.benchmarks.bench_settings"
PARALLEL = 2
NEW_MIGRATION = ("benchapp", "0002_note_priority")
PASSWORD = "Bench-tenant-scale-2026"
SLUG_PREFIX = "scale"
LIST_PATH = "/api/v1/clinical/patients/"
TOOL_TIMEOUT_SECONDS = 3 * 3600
# A day: longer than any run, so only the code under test (or nothing) recycles a connection.
CONN_MAX_AGE = "86400"
PROGRESS_SECONDS = 15.0
REASON_WORDS = ("error", "ERROR", "FATAL", "HINT")


def int_list(variable: str, default: tuple[int, ...], limit: int) -> list[int]:
    """Sorted unique values of a comma-separated variable up to ``limit``, ``limit`` included."""
    raw = os.environ.get(variable)
    values = [int(part) for part in raw.split(",") if part.strip()] if raw else list(default)
    return sorted({value for value in values if 0 < value < limit} | {limit})


TENANTS = int(os.environ.get("BENCH_TENANTS", str(DEFAULT_TENANTS)))
CHECKPOINTS = int_list("BENCH_CHECKPOINTS", DEFAULT_POINTS, TENANTS)
MEMORY_POINTS = int_list("BENCH_MEMORY_K", DEFAULT_POINTS, TENANTS)
FIRST_TOUCH = int(os.environ.get("BENCH_FIRST_TOUCH", "50"))
WARM_REPEATS = int(os.environ.get("BENCH_WARM_REPEATS", "4"))
BASEBACKUP = os.environ.get("BENCH_BASEBACKUP", "1") != "0"


def new_migration_points() -> list[int]:
    """Checkpoints that also time one new migration: all (default), none ("0"), or a list."""
    raw = os.environ.get("BENCH_NEW_MIGRATION", "all").strip()
    if raw == "0":
        return []
    if raw in {"", "1", "all"}:
        return CHECKPOINTS
    return sorted({int(part) for part in raw.split(",") if part.strip()} & set(CHECKPOINTS))


NEW_MIGRATION_AT = new_migration_points()
# Fewer points than this give a line through noise: the fit is kept in the JSON, not reported.
MIN_FIT_POINTS = 3


def slug_for(index: int) -> str:
    return f"{SLUG_PREFIX}-{index:05d}"


@dataclass
class Checkpoint:
    """What one tenant count measured: seconds per metric, and pass/fail of the backup paths."""

    tenants: int
    seconds: dict[str, float] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)


# --- provisioning ---------------------------------------------------------------------------------


def fresh_connection() -> None:
    """A new database session, as a new provision_tenant (or manage.py) process would get."""
    from django.db import connection

    connection.close()
    connection.ensure_connection()


def provision(index: int) -> float:
    from tenants.services import tenant_provision

    slug = slug_for(index)
    fresh_connection()
    return timed(
        lambda: tenant_provision(
            slug=slug,
            name=f"Bench {slug}",
            kind="mixed",
            admin_email=f"admin@{slug}.test",
            admin_password=PASSWORD,
        )
    )


def provision_up_to(done: int, target: int) -> list[float]:
    samples: list[float] = []
    last_report = time.monotonic()
    for index in range(done, target):
        samples.append(provision(index))
        if time.monotonic() - last_report >= PROGRESS_SECONDS or index + 1 == target:
            last_report = time.monotonic()
            recent = summarize(samples[-50:])
            say(
                f"provisioned {index + 1}/{TENANTS} (checkpoint {target}); "
                f"last {recent.count}: p50 {recent.p50:.3f} s"
            )
    return samples


# --- migrations -----------------------------------------------------------------------------------


def run_manage(args: list[str], *, stage: str, log: Path) -> float:
    """``manage.py <args>`` under the benchmark settings at migration ``stage``; wall seconds."""
    env = {**os.environ, "BENCH_MIGRATION_STAGE": stage}
    command = [sys.executable, str(ROOT / "manage.py"), *args, f"--settings={SETTINGS}"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as stream:
        started = time.perf_counter()
        completed = subprocess.run(
            command, cwd=ROOT, env=env, stdout=stream, stderr=subprocess.STDOUT, check=False
        )
        seconds = time.perf_counter() - started
    if completed.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} failed (exit {completed.returncode}); {log}"
        )
    return seconds


MIGRATE_ARGS = [
    "migrate_schemas",
    "--tenant",
    "--executor=subprocess",
    "--parallel",
    str(PARALLEL),
    "--noinput",
]


def tenant_schemas() -> list[str]:
    from tenants.models import Tenant

    return list(Tenant.objects.values_list("schema_name", flat=True))


def undo_new_migration(database_url: str, schemas: list[str]) -> None:
    """What benchapp 0002 did, undone per schema (its index goes with the column), so the next
    checkpoint can apply it again. Autocommit per schema keeps the locks per transaction few."""
    import psycopg
    from django_tenants.utils import quote_schema_name

    app, name = NEW_MIGRATION
    with psycopg.connect(database_url, autocommit=True) as conn:
        for schema in schemas:
            quoted = quote_schema_name(schema)
            with conn.transaction():
                conn.execute(f"ALTER TABLE {quoted}.benchapp_note DROP COLUMN IF EXISTS priority")
                conn.execute(
                    f"DELETE FROM {quoted}.django_migrations WHERE app = %s AND name = %s",
                    [app, name],
                )


def measure_migrations(point: Checkpoint, database_url: str, logs: Path) -> None:
    from django.db import connections

    from tenants.migration_state import applied_migrations, schemas_behind

    connections.close_all()
    point.seconds["migrate_schemas no-op"] = run_manage(
        MIGRATE_ARGS, stage="1", log=logs / f"migrate-noop-{point.tenants}.log"
    )
    if point.tenants not in NEW_MIGRATION_AT:
        return
    point.seconds["migrate_schemas one new migration"] = run_manage(
        MIGRATE_ARGS, stage="2", log=logs / f"migrate-new-{point.tenants}.log"
    )
    schemas = tenant_schemas()
    migrated = sum(NEW_MIGRATION in applied for applied in applied_migrations(schemas).values())
    if migrated != len(schemas):
        raise RuntimeError(f"only {migrated} of {len(schemas)} schemas applied {NEW_MIGRATION}")
    undo_new_migration(database_url, schemas)
    behind = schemas_behind(schemas)
    if behind:
        raise RuntimeError(f"{len(behind)} schema(s) not at stage 1 after the undo: {behind[:3]}")


# --- drift, backups, sweep ------------------------------------------------------------------------


def measure_drift(point: Checkpoint) -> None:
    """The command's work on a fresh connection, without the ~1 s of a new process's Django
    start-up; it raises (and the benchmark stops) if a schema drifted."""
    from django.core.management import call_command

    out = io.StringIO()
    fresh_connection()
    point.seconds["check_schema_drift"] = timed(
        lambda: call_command("check_schema_drift", verbosity=0, stdout=out)
    )
    point.details["check_schema_drift_output"] = out.getvalue().strip()


def measure_tenant_backup(point: Checkpoint, workdir: Path) -> None:
    """Back up the first tenant, drop it, restore it: a dropped tenant brought back whole into a
    schema that no longer exists (tenant_restore restores into the tenant's own schema name)."""
    from tenants.backup import tenant_backup, tenant_restore
    from tenants.services import tenant_drop
    from tenants.template_script import template_script

    slug = slug_for(0)
    path = workdir / f"{slug}-{point.tenants}.tar"
    # The template's stored DDL script (the copy method's DDL, shared with provisioning) is
    # dumped once per template version; after the new-migration step undid benchapp 0002 it is
    # missing, and that one dump is not the backup's cost.
    template_script()
    fresh_connection()
    backup = tenant_backup(slug=slug, path=path)
    point.details["backup_method"] = backup.method
    point.seconds["backup_tenant (one tenant)"] = backup.seconds
    point.details["backup_bytes"] = backup.size_bytes
    point.details["drop_tenant_seconds"] = timed(lambda: tenant_drop(slug=slug))
    fresh_connection()
    restore = tenant_restore(slug=slug, path=path)
    point.seconds["restore_tenant (one tenant)"] = restore.seconds
    path.unlink()


def run_tool(name: str, args: list[str]) -> tuple[float, str | None]:
    """Wall seconds of one PostgreSQL client tool, and its last error line when it failed."""
    from tenants.pg_tools import find_pg_tool, libpq_env

    executable = find_pg_tool(name)
    if executable is None:
        return 0.0, f"{name} not found"
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            [str(executable), *args],
            env=libpq_env(),
            capture_output=True,
            text=True,
            timeout=TOOL_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - started, f"timed out after {TOOL_TIMEOUT_SECONDS} s"
    seconds = time.perf_counter() - started
    if completed.returncode == 0:
        return seconds, None
    lines = [line.strip() for line in completed.stderr.splitlines() if line.strip()]
    # pg_dump's useful lines are "error: ... out of shared memory" and the HINT naming
    # max_locks_per_transaction; its "Query was: LOCK TABLE ..." detail is only noise.
    wanted = [line for line in lines if any(word in line for word in REASON_WORDS)]
    reason = " | ".join((wanted or lines)[-3:]) or f"exit {completed.returncode}, no output"
    return seconds, reason


def measure_whole_database(point: Checkpoint, workdir: Path) -> None:
    dump = workdir / "whole.sql"
    seconds, error = run_tool("pg_dump", ["--schema-only", f"--file={dump}"])
    record_check(point, "pg_dump --schema-only (whole database)", seconds, error)
    dump.unlink(missing_ok=True)
    if not BASEBACKUP:
        return
    target = workdir / "basebackup"
    seconds, error = run_tool(
        "pg_basebackup",
        [f"--pgdata={target}", "--wal-method=stream", "--checkpoint=fast", "--no-sync"],
    )
    record_check(point, "pg_basebackup (whole cluster)", seconds, error)
    if error is None:
        with contextlib.suppress(OSError):
            point.details["basebackup_bytes"] = sum(
                path.stat().st_size for path in target.rglob("*") if path.is_file()
            )
    shutil.rmtree(target, ignore_errors=True)


def record_check(point: Checkpoint, name: str, seconds: float, error: str | None) -> None:
    """A check's time joins the fitted metrics only when it succeeded; a failure keeps the time
    until it failed and PostgreSQL's message."""
    point.checks[name] = pass_fail(error is None)
    point.details.setdefault("check_seconds", {})[name] = seconds
    if error is None:
        point.seconds[name] = seconds
    else:
        point.details.setdefault("errors", {})[name] = error
        say(f"  {name}: FAIL: {error}")


def measure_sweep(point: Checkpoint) -> None:
    from apikit.tenancy import activate_public
    from clinical.tasks import reminders_sweep

    fresh_connection()
    activate_public()
    point.seconds["reminder sweep (cold)"] = timed(reminders_sweep)


# --- requests through gunicorn -------------------------------------------------------------------


def access_token(slug: str) -> str:
    """An access token for the tenant's admin, issued in this process (the gunicorn worker's
    connection does not see the tenant before the measured request)."""
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from accounts.tokens import token_pair_issue
    from tenants.models import Tenant

    with tenant_context(Tenant.objects.get(slug=slug)):
        user = User.objects.get(email=f"admin@{slug}.test")
        return token_pair_issue(user=user).access


def sample_slugs(count: int, tenants: int, *, skip: int = 0) -> list[str]:
    """``count`` tenants spread evenly over the first ``tenants`` (indexes ``skip`` upwards)."""
    span = tenants - skip
    if span <= 0:
        return []
    count = min(count, span)
    return [slug_for(skip + (index * span) // count) for index in range(count)]


def measure_requests(point: Checkpoint, logs: Path) -> None:
    """One sync gunicorn worker (one connection), warmed on tenant 0; then for tenants it has not
    served: the first request (first-touch) and WARM_REPEATS more (warm)."""
    from django.db import connections

    from tenants.services import tenant_host

    slugs = sample_slugs(FIRST_TOUCH, point.tenants, skip=1)
    tokens = {slug: access_token(slug) for slug in [slug_for(0), *slugs]}
    connections.close_all()
    port = free_port()
    first: list[float] = []
    warm: list[float] = []
    with gunicorn(
        app="settings.wsgi:application",
        port=port,
        log=logs / f"gunicorn-{point.tenants}.log",
        workers=1,
    ):
        for slug in [slug_for(0)] * (WARM_REPEATS + 1):
            get_list(port, tenant_host(slug), tokens[slug])
        for slug in slugs:
            host = tenant_host(slug)
            first.append(get_list(port, host, tokens[slug]))
            warm.extend(get_list(port, host, tokens[slug]) for _ in range(WARM_REPEATS))
    if first:
        point.details["first_touch_seconds"] = first
        point.details["warm_seconds"] = warm
        for label, samples in (("first-touch", first), ("warm", warm)):
            stats = summarize(samples)
            point.seconds[f"request p50 {label}"] = stats.p50
            point.seconds[f"request p95 {label}"] = stats.p95


def get_list(port: int, host: str, token: str) -> float:
    status, body, seconds, _ = http_json(port, host, "GET", LIST_PATH, token)
    if status != 200:
        raise RuntimeError(f"GET {LIST_PATH} on {host}: HTTP {status}: {body}")
    return seconds


# --- backend memory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackendMemory:
    touched: int
    pid: int
    rss_anon_bytes: int | None
    contexts_bytes: int
    cache_contexts_bytes: int
    seconds: float


def rss_anon_bytes(pid: int) -> int | None:
    """RssAnon of a local process (the backend's private memory), None when unreadable."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return None


def backend_memory(touched: int, started: float) -> BackendMemory:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_backend_pid(), sum(total_bytes), "
            "coalesce(sum(total_bytes) FILTER (WHERE name = 'CacheMemoryContext' "
            "OR parent = 'CacheMemoryContext'), 0) FROM pg_backend_memory_contexts"
        )
        pid, total, cache = cursor.fetchone()
    return BackendMemory(
        touched=touched,
        pid=int(pid),
        rss_anon_bytes=rss_anon_bytes(int(pid)),
        contexts_bytes=int(total),
        cache_contexts_bytes=int(cache),
        seconds=time.perf_counter() - started,
    )


@contextlib.contextmanager
def public_schema() -> Iterator[None]:
    from apikit.tenancy import activate_public

    try:
        yield
    finally:
        activate_public()


def measure_memory(result: Result) -> list[BackendMemory]:
    """One connection serves the list endpoint for tenant after tenant (Django's test client:
    routing, authentication and the view as gunicorn runs them)."""
    from rest_framework.test import APIClient

    from tenants.services import tenant_host

    fresh_connection()
    points: list[BackendMemory] = []
    started = time.perf_counter()
    last_report = time.monotonic()
    with public_schema():
        for index in range(TENANTS):
            slug = slug_for(index)
            token = access_token(slug)
            client = APIClient(HTTP_HOST=tenant_host(slug))
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            response = client.get(LIST_PATH)
            if response.status_code != 200:
                raise RuntimeError(f"GET {LIST_PATH} on {slug}: HTTP {response.status_code}")
            if index + 1 in MEMORY_POINTS:
                points.append(backend_memory(index + 1, started))
                rss = points[-1].rss_anon_bytes
                say(
                    f"memory after {index + 1} tenants on one connection: RssAnon "
                    f"{'n/a' if rss is None else f'{mib(rss):.1f} MiB'}, contexts "
                    f"{mib(points[-1].contexts_bytes):.1f} MiB "
                    f"(cache {mib(points[-1].cache_contexts_bytes):.1f} MiB)"
                )
            elif time.monotonic() - last_report >= PROGRESS_SECONDS:
                last_report = time.monotonic()
                say(f"memory pass: {index + 1}/{TENANTS} tenants served on one connection")
    pids = {point.pid for point in points}
    result.details["memory_connection_pids"] = sorted(pids)
    if len(pids) > 1:
        say(f"the connection was replaced during the memory pass (pids {sorted(pids)})")
    return points


# --- the fit and the report -----------------------------------------------------------------------


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float, float] | None:
    """Least-squares slope, intercept and r² (1.0 for a flat series), or None with fewer than two
    distinct x."""
    if len(set(xs)) < 2:
        return None
    n = len(xs)
    mean_x, mean_y = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sxx
    intercept = mean_y - slope * mean_x
    total = sum((y - mean_y) ** 2 for y in ys)
    residual = sum((y - slope * x - intercept) ** 2 for x, y in zip(xs, ys, strict=True))
    return slope, intercept, 1.0 - residual / total if total else 1.0


def project(series: dict[str, list[tuple[int, float]]]) -> dict[str, dict[str, float]]:
    """Per metric: the least-squares line through (tenants, value), extrapolated to PROJECT_TO."""
    projections: dict[str, dict[str, float]] = {}
    for metric, points in series.items():
        line = fit_line([float(x) for x, _ in points], [y for _, y in points])
        if line is not None:
            slope, intercept, r_squared = line
            projections[metric] = {
                "slope_per_tenant": slope,
                "intercept": intercept,
                "r_squared": r_squared,
                "projected": slope * PROJECT_TO + intercept,
                "points": len(points),
            }
    return projections


def reported(projections: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {metric: fit for metric, fit in projections.items() if fit["points"] >= MIN_FIT_POINTS}


def memory_series(points: list[BackendMemory]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = {
        "backend contexts total": [(p.touched, mib(p.contexts_bytes)) for p in points],
        "backend CacheMemoryContext": [(p.touched, mib(p.cache_contexts_bytes)) for p in points],
    }
    rss = [(p.touched, mib(p.rss_anon_bytes)) for p in points if p.rss_anon_bytes is not None]
    if rss:
        series["backend RssAnon"] = rss
    return series


def add_rows(result: Result, checkpoints: list[Checkpoint], memory: list[BackendMemory]) -> None:
    series: dict[str, list[tuple[int, float]]] = {}
    for point in checkpoints:
        for metric, value in point.seconds.items():
            series.setdefault(metric, []).append((point.tenants, value))
            if metric not in point.checks:
                result.add(f"N={point.tenants}: {metric}", value, "s")
        for check, status in point.checks.items():
            error = point.details.get("errors", {}).get(check, "")
            result.add(
                f"N={point.tenants}: {check}",
                point.details["check_seconds"][check],
                "s",
                target=f"succeeds; got: {error[:100]}" if error else "succeeds",
                status=status,
            )
    memory_by_k = memory_series(memory)
    for metric, values in memory_by_k.items():
        for touched, value in values:
            result.add(f"K={touched}: {metric} after K tenants", value, "MiB")
    projected = {**project(series), **project(memory_by_k)}
    for metric, fit in reported(projected).items():
        unit = "MiB" if metric in memory_by_k else "s"
        axis = "K" if metric in memory_by_k else "N"
        result.add(
            f"projected {axis}={PROJECT_TO}: {metric} "
            f"(linear fit of {fit['points']} points, r2 {fit['r_squared']:.2f})",
            fit["projected"],
            unit,
        )
    result.details["projections"] = projected


def table(checkpoints: list[Checkpoint], memory: list[BackendMemory], result: Result) -> str:
    """Metrics down, tenant counts across, projections last."""
    projections = reported(result.details.get("projections", {}))
    metrics = list(dict.fromkeys(m for point in checkpoints for m in point.seconds))
    header = ["metric (seconds)", *(f"N={p.tenants}" for p in checkpoints), f"{PROJECT_TO} proj."]
    rows = [header]
    for metric in metrics:
        cells = [f"{p.seconds[metric]:.3f}" if metric in p.seconds else "-" for p in checkpoints]
        fit = projections.get(metric)
        rows.append([metric, *cells, f"{fit['projected']:.2f}" if fit else "-"])
    checks = list(dict.fromkeys(c for point in checkpoints for c in point.checks))
    for check in checks:
        statuses = [p.checks.get(check, "-") for p in checkpoints]
        rows.append([f"{check}: status", *statuses, ""])
    lines = [render(rows)]
    if memory:
        memory_rows = [["after K tenants", "RssAnon MiB", "contexts MiB", "cache MiB"]]
        for point in memory:
            rss = point.rss_anon_bytes
            memory_rows.append(
                [
                    f"K={point.touched}",
                    "n/a" if rss is None else f"{mib(rss):.1f}",
                    f"{mib(point.contexts_bytes):.1f}",
                    f"{mib(point.cache_contexts_bytes):.1f}",
                ]
            )
        fits = [
            projections.get(name)
            for name in ("backend RssAnon", "backend contexts total", "backend CacheMemoryContext")
        ]
        memory_rows.append(
            [
                f"K={PROJECT_TO} projected",
                *(f"{fit['projected']:.1f}" if fit else "-" for fit in fits),
            ]
        )
        lines.append(render(memory_rows))
    return "\n\n".join(lines)


def render(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    rendered = [
        "  ".join(cell.rjust(width) if column else cell.ljust(width)
                  for column, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]  # fmt: skip
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)


# --- the run --------------------------------------------------------------------------------------


def server_version_num() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        return int(cursor.fetchone()[0])


def main() -> int:
    output = output_path(__doc__ or "")
    logs = output.with_suffix("")
    logs.mkdir(parents=True, exist_ok=True)
    result = Result(
        benchmark="tenant_scale",
        details={
            "tenants": TENANTS,
            "checkpoints": CHECKPOINTS,
            "memory_points": MEMORY_POINTS,
            "first_touch_per_checkpoint": FIRST_TOUCH,
            "warm_repeats": WARM_REPEATS,
            "parallel": PARALLEL,
            "new_migration_at": NEW_MIGRATION_AT,
            "projected_to": PROJECT_TO,
        },
    )
    os.environ["BENCH_MIGRATION_STAGE"] = "1"
    os.environ["DB_CONN_MAX_AGE"] = CONN_MAX_AGE
    os.environ.setdefault("DEBUG", "false")
    # The memory pass serves every tenant in this process: no request log line for each.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    checkpoints: list[Checkpoint] = []
    memory: list[BackendMemory] = []
    with (
        bench_database("tenant_scale") as database_url,
        tempfile.TemporaryDirectory(prefix="verdant-tenant-scale-") as scratch,
    ):
        django_setup(SETTINGS)
        from tenants.services import template_schema_ensure

        version = server_version_num()
        result.details["server_version_num"] = version
        if version < 140000:
            raise RuntimeError(f"PostgreSQL {version}: pg_backend_memory_contexts needs 14+")
        say(f"{TENANTS} tenants, checkpoints {CHECKPOINTS}, memory after K = {MEMORY_POINTS}")
        say("migrating the public schema and the template (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        done = 0
        for target in CHECKPOINTS:
            point = Checkpoint(tenants=target)
            samples = provision_up_to(done, target)
            done = target
            stats = summarize(samples)
            point.seconds["provisioning p50"] = stats.p50
            point.seconds["provisioning p95"] = stats.p95
            point.details["provisioning_samples"] = len(samples)
            point.details["load_average"] = os.getloadavg()
            steps = (
                ("migrate_schemas", lambda p=point: measure_migrations(p, database_url, logs)),
                ("check_schema_drift", lambda p=point: measure_drift(p)),
                (
                    "backup/restore one tenant",
                    lambda p=point: measure_tenant_backup(p, Path(scratch)),
                ),
                ("whole-database backup", lambda p=point: measure_whole_database(p, Path(scratch))),
                ("reminder sweep", lambda p=point: measure_sweep(p)),
                ("requests", lambda p=point: measure_requests(p, logs)),
            )
            for label, step in steps:
                say(f"N={target}: {label} ...")
                step()
            say(
                f"N={target}: "
                + ", ".join(f"{metric} {value:.3f} s" for metric, value in point.seconds.items())
            )
            checkpoints.append(point)
            result.details.setdefault("checkpoints_detail", {})[str(target)] = {
                "seconds": point.seconds,
                "checks": point.checks,
                **point.details,
            }
        say(f"memory: one connection serving all {TENANTS} tenants in turn")
        memory = measure_memory(result)
        result.details["memory"] = [vars(point) for point in memory]
        add_rows(result, checkpoints, memory)
    result.write(output)
    sys.stdout.write("\n" + table(checkpoints, memory, result) + "\n\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
