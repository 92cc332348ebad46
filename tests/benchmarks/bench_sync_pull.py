"""GET /api/v1/sync/pull/?limit=5000 through gunicorn: a page of 5,000 observations at change-log
depth 0 (a fresh tenant's first pull) and again after 1,000,000 older change-log entries (the
device's cursor sits behind them, and 5,000 newer changes follow).

Target (issue 7): the two within 20 % of each other: the page query is an index range scan on
``(txid, seq)``, so the log's depth must not matter. Also reported: the in-process query count
per page at 500 and 5,000 rows (must be equal) and the response size.

    python -m tests.benchmarks.bench_sync_pull --output result.json

The 1,000,000 filler entries are written set-wise with generate_series (one INSERT), as a
compaction-free log of a busy tenant would hold them.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode

from tests.benchmarks.common import (
    Result,
    bench_database,
    django_setup,
    http_json,
    migrate_public_schema,
    output_path,
    pass_fail,
    say,
    summarize,
    unthrottled_tenant_provision,
    watermark_settle,
)
from tests.benchmarks.serving import free_port, gunicorn

ROWS = 5_000
FILLER = 1_000_000
REQUESTS = 15
WORKERS = 2
TOLERANCE = 0.20
SLUG = "benchsync"
PASSWORD = "Quartz-Lantern-4417"


def seed() -> tuple[Any, str]:
    from django.utils import timezone
    from django_tenants.utils import tenant_context

    from farms.models import Farm, Field, Observation

    tenant = unthrottled_tenant_provision(
        slug=SLUG, name="Bench sync", kind="farm", password=PASSWORD
    )
    with tenant_context(tenant):
        farm = Farm.objects.create(name="Bench farm")
        square = [[36.0, -0.4], [36.01, -0.4], [36.01, -0.39], [36.0, -0.39], [36.0, -0.4]]
        field = Field.objects.create(
            farm=farm,
            name="Bench field",
            boundary={"type": "Polygon", "coordinates": [square]},
            area_ha=1.0,
            bbox_min_lon=36.0,
            bbox_min_lat=-0.4,
            bbox_max_lon=36.01,
            bbox_max_lat=-0.39,
        )
        now = timezone.now()
        Observation.objects.bulk_create(
            (
                Observation(
                    field=field,
                    observed_at=now,
                    kind="soil_moisture",
                    value=20.0 + n % 10,
                    unit="%",
                    text=f"reading {n}",
                )
                for n in range(ROWS)
            ),
            batch_size=5000,
        )
    return tenant, str(farm.pk)


def add_filler_and_changes(tenant: Any, farm_id: str) -> None:
    """1,000,000 older log entries (one INSERT ... generate_series), then 5,000 new changes."""
    from django.db import connection, transaction
    from django_tenants.utils import tenant_context

    with tenant_context(tenant), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sync_change (tbl, row_id, op, scope_ids) "
            "SELECT 'observations', md5(g::text)::uuid, 'U', ARRAY[%s::uuid] "
            "FROM generate_series(1, %s) AS g",
            [farm_id, FILLER],
        )
    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("ANALYZE sync_change")


def current_cursor(tenant: Any) -> str:
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from sync.cursor import cursor_current

    with tenant_context(tenant):
        admin = User.objects.get(email=f"admin@{SLUG}.test")
        return cursor_current(user=admin, tables=["observations"])


def touch_rows(tenant: Any) -> None:
    from django.db.models import F
    from django_tenants.utils import tenant_context

    from farms.models import Observation

    with tenant_context(tenant):
        Observation.objects.update(version=F("version") + 1)


def log_size(tenant: Any) -> int:
    from django.db import connection
    from django_tenants.utils import tenant_context

    with tenant_context(tenant), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sync_change")
        return int(cursor.fetchone()[0])


def query_counts(host: str, token: str) -> dict[int, int]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    client = APIClient(HTTP_HOST=host)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    counts: dict[int, int] = {}
    for limit in (500, ROWS):
        params = {"limit": str(limit), "tables": "observations"}
        client.get("/api/v1/sync/pull/", params)
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/api/v1/sync/pull/", params)
        assert response.status_code == 200, response.content
        counts[limit] = len(captured.captured_queries)
    return counts


def measure(port: int, host: str, token: str, cursor: str | None) -> dict[str, Any]:
    params = {"limit": ROWS, "tables": "observations", **({"cursor": cursor} if cursor else {})}
    path = f"/api/v1/sync/pull/?{urlencode(params)}"
    for _ in range(3):  # warm both workers
        http_json(port, host, "GET", path, token)
    latencies = []
    rows = size = 0
    for _ in range(REQUESTS):
        status, body, elapsed, size = http_json(port, host, "GET", path, token)
        if status != 200:
            raise RuntimeError(f"pull answered {status}: {body}")
        rows = len(body["changes"]["observations"]["upserted"])
        if rows != ROWS:
            raise RuntimeError(f"expected {ROWS} rows, the pull sent {rows}")
        latencies.append(elapsed)
    return {"latencies": latencies, "rows": rows, "bytes": size}


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="sync_pull", details={})
    with bench_database("sync_pull"):
        os.environ.setdefault("DEBUG", "false")
        django_setup("settings.dev")
        from django.db import connections

        from tenants.services import template_schema_ensure, tenant_host

        say("migrating, provisioning the bench tenant and 5,000 observations (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        tenant, farm_id = seed()
        host = tenant_host(SLUG)
        connections.close_all()
        port = free_port()
        log = output.with_suffix(".gunicorn.log")
        with gunicorn(app="settings.wsgi:application", port=port, log=log, workers=WORKERS):
            _, tokens, _, _ = http_json(
                port,
                host,
                "POST",
                "/api/v1/auth/token/",
                body={"email": f"admin@{SLUG}.test", "password": PASSWORD},
            )
            token = tokens["access"]
            say(f"waited {watermark_settle():.1f} s for older transactions elsewhere to finish")
            counts = query_counts(host, token)
            say(f"queries per page by limit: {counts}")
            say(f"depth 0: change log holds {log_size(tenant):,} entries")
            shallow = measure(port, host, token, cursor=None)
            say(f"depth 0: p50 {summarize(shallow['latencies']).p50 * 1000:.1f} ms")
            # The device is up to date: its cursor is past the first 5,000 entries.
            _, first, _, _ = http_json(
                port, host, "GET", f"/api/v1/sync/pull/?limit={ROWS}&tables=observations", token
            )
            assert not first["has_more"]
            say(f"writing {FILLER:,} change-log entries with generate_series (not timed)")
            add_filler_and_changes(tenant, farm_id)
            # The device is up to date again: its cursor sits after the filler (what paging
            # through it would have left; built in-process to save 200 untimed requests).
            assert not first["has_more"]
            cursor = current_cursor(tenant)
            touch_rows(tenant)
            say(f"waited {watermark_settle():.1f} s for older transactions elsewhere to finish")
            depth = log_size(tenant)
            say(f"deep: change log holds {depth:,} entries; 5,000 new changes follow the cursor")
            deep = measure(port, host, token, cursor=cursor)
            say(f"deep: p50 {summarize(deep['latencies']).p50 * 1000:.1f} ms")
            connections.close_all()
    shallow_summary = summarize(shallow["latencies"])
    deep_summary = summarize(deep["latencies"])
    for name, summary, sample in (
        ("depth 0", shallow_summary, shallow),
        ("depth 1,000,000", deep_summary, deep),
    ):
        result.add(f"{name}: rows per page", sample["rows"], "rows")
        result.add(f"{name}: response size", sample["bytes"] / 1024, "KiB")
        result.add(f"{name}: p50 latency", summary.p50 * 1000, "ms")
        result.add(f"{name}: p95 latency", summary.p95 * 1000, "ms")
    ratio = deep_summary.p50 / shallow_summary.p50
    result.add(
        "deep / shallow p50",
        ratio,
        "x",
        target=f"within {TOLERANCE:.0%}",
        status=pass_fail(abs(ratio - 1) <= TOLERANCE),
    )
    result.add_query_counts(counts, per="page", size_name="limit")
    result.details = {
        "rows": ROWS,
        "filler_entries": FILLER,
        "requests_per_variant": REQUESTS,
        "gunicorn_workers": WORKERS,
        "query_counts": counts,
        "log_entries_deep": depth,
    }
    result.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
