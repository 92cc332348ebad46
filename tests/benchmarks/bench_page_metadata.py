"""Numbered pages with metadata (issue 19, item 7) against the cursor page they sit beside:
``GET /api/v1/clinical/patients/?paginate=page&page_size=50`` versus the default cursor page
``?page_size=50``, over a tenant of 1,000,000 patients, as its tenant_admin (every patient: the
count stops at API_PAGE_COUNT_LIMIT + 1) and as a clinician granted one facility of ten (the
count runs over that facility's patients only).

Target: the numbered page's median latency within 2x of the cursor page's, for both users.

Served by gunicorn (one sync worker: requests one at a time, so the ratio is the request's own
cost, not queueing), the variants interleaved in short rounds (order reversed every other round)
and the ratio taken per round, then the median: this VM's speed drifts over a minute.

The patients are COPYed in (psycopg ``COPY ... FROM STDIN``), with the table's secondary indexes
dropped during the load and rebuilt after it, and triggers off for the loading session
(``session_replication_role = replica``: the sync change log is not what is measured).

    python -m tests.benchmarks.bench_page_metadata --output result.json
    BENCH_PATIENTS=20000 python -m tests.benchmarks.bench_page_metadata --output /tmp/r.json
"""

from __future__ import annotations

import http.client
import os
import random
import statistics
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.benchmarks.common import (
    Result,
    bench_database,
    clinic_staff,
    django_setup,
    http_json,
    migrate_public_schema,
    output_path,
    pass_fail,
    say,
    summarize,
    unthrottled_tenant_provision,
)
from tests.benchmarks.serving import free_port, gunicorn

PATIENTS = int(os.environ.get("BENCH_PATIENTS", "1000000"))
FACILITIES = 10
CLINICIANS = 20
PAGE_SIZE = 50
ROUNDS = int(os.environ.get("BENCH_PAGE_ROUNDS", "10"))
REQUESTS_PER_ROUND = int(os.environ.get("BENCH_PAGE_REQUESTS", "20"))
WARM_UP_REQUESTS = 10
TARGET = 2.0
SLUG = "benchpages"
PASSWORD = "Quartz-Lantern-4417"
CLINICIAN_EMAIL = f"doc0@{SLUG}.test"
PATH = "/api/v1/clinical/patients/"
VARIANTS = {
    "cursor": f"{PATH}?page_size={PAGE_SIZE}",
    "numbered": f"{PATH}?paginate=page&page_size={PAGE_SIZE}",
}
USERS = {"tenant_admin": f"admin@{SLUG}.test", "one-facility clinician": CLINICIAN_EMAIL}
COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "version",
    "mrn",
    "given_name",
    "family_name",
    "birth_date",
    "sex",
    "phone",
    "sms_opt_in",
    "visit_count",
    "facility_id",
    "assigned_clinician_id",
)
GIVEN = ("Ada", "Grace", "Alan", "Mary", "Omar", "Yuki", "Amara", "Lars")
FAMILY = ("Lovelace", "Hopper", "Turing", "Seacole", "Haddad", "Okafor", "Berg", "Tanaka")


# --- data ----------------------------------------------------------------------------------------


def seed(database_url: str) -> dict[str, Any]:
    """The tenant, ten facilities, twenty clinicians (the first granted facility 0 only) and
    PATIENTS patients spread evenly over the facilities; returns how long the load took."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    from apikit.policy import AccessLevel, container_access_grant

    tenant = unthrottled_tenant_provision(
        slug=SLUG, name="Bench pages", kind="clinic", password=PASSWORD
    )
    with tenant_context(tenant):
        facilities, clinicians = clinic_staff(
            slug=SLUG, facilities=FACILITIES, clinicians=CLINICIANS, password=PASSWORD
        )
        container_access_grant(user=clinicians[0], container=facilities[0], level=AccessLevel.VIEW)
    connection.close()
    started = time.perf_counter()
    copy_patients(
        database_url,
        schema=tenant.schema_name,
        facility_ids=[f.pk for f in facilities],
        clinician_ids=[c.pk for c in clinicians],
    )
    return {"schema": tenant.schema_name, "load_seconds": time.perf_counter() - started}


def _rows(facility_ids: list[Any], clinician_ids: list[Any]) -> Any:
    import uuid_utils

    rng = random.Random(19)  # noqa: S311  (bench data)
    now = datetime.now(UTC)
    for i in range(PATIENTS):
        yield (
            str(uuid_utils.uuid7()),
            now,
            now,
            1,
            f"P-{i:08d}",
            GIVEN[rng.randrange(len(GIVEN))],
            FAMILY[rng.randrange(len(FAMILY))],
            date(1940, 1, 1) + timedelta(days=rng.randrange(30_000)),
            ("female", "male", "other", "unknown")[i % 4],
            f"+49151{10**7 + i:08d}",
            i % 3 == 0,
            0,
            facility_ids[i % len(facility_ids)],
            clinician_ids[i % len(clinician_ids)] if i % 7 else None,
        )


def copy_patients(
    database_url: str, *, schema: str, facility_ids: list[Any], clinician_ids: list[Any]
) -> None:
    import psycopg

    table = f'"{schema}".clinical_patient'
    with psycopg.connect(database_url, autocommit=True) as conn:
        # Secondary indexes not backing a constraint: rebuilt once after the load, which is
        # much faster than maintaining them (the GIN index above all) row by row.
        indexes = conn.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid = %s::regclass
              AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
            """,
            [table],
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            with conn.cursor() as cursor:
                columns = ", ".join(COLUMNS)
                with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for index, row in enumerate(_rows(facility_ids, clinician_ids)):
                        copy.write_row(row)
                        if index and index % 200_000 == 0:
                            say(f"{index:,} patients copied")
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute(f"VACUUM ANALYZE {table}")


# --- the load ------------------------------------------------------------------------------------


def request_once(port: int, host: str, path: str, token: str) -> tuple[int, float, bytes]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", path, headers={"Host": host, "Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        body = response.read()
        return response.status, time.perf_counter() - started, body
    finally:
        connection.close()


def token_for(port: int, host: str, email: str) -> str:
    credentials = {"email": email, "password": PASSWORD}
    _, data, _, _ = http_json(port, host, "POST", "/api/v1/auth/token/", body=credentials)
    return str(data["access"])


def count_sql_ms(schema: str, database_url: str) -> dict[str, float]:
    """The bounded count alone (as the admin's request issues it), median of 5, for the report."""
    import psycopg
    from django.conf import settings

    limit = int(settings.API_PAGE_COUNT_LIMIT)
    sql = (
        f'SELECT count(*) FROM (SELECT id FROM "{schema}".clinical_patient '
        f"WHERE archived_at IS NULL LIMIT {limit + 1}) counted"
    )
    samples = []
    with psycopg.connect(database_url) as conn:
        for _ in range(6):
            started = time.perf_counter()
            conn.execute(sql).fetchone()
            samples.append(time.perf_counter() - started)
    return {"admin_count_ms_p50": statistics.median(samples[1:]) * 1000}


def count_plans(host: str) -> dict[str, dict[str, Any]]:
    """Each user's count query exactly as the endpoint issues it (captured in-process), with
    its ``EXPLAIN (ANALYZE, BUFFERS)``, for the report: which index the bound walks."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    plans: dict[str, dict[str, Any]] = {}
    for user, email in USERS.items():
        client = APIClient(HTTP_HOST=host)
        token = client.post(
            "/api/v1/auth/token/", {"email": email, "password": PASSWORD}, format="json"
        ).json()["access"]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        client.get(VARIANTS["numbered"])
        with CaptureQueriesContext(connection) as captured:
            response = client.get(VARIANTS["numbered"])
        assert response.status_code == 200, response.content
        queries = [q["sql"] for q in captured.captured_queries]
        count_sql = next(sql for sql in queries if sql.upper().startswith("SELECT COUNT("))
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {count_sql}")
            plan = [row[0] for row in cursor.fetchall()]
        plans[user] = {"queries_per_request": len(queries), "count_sql": count_sql, "plan": plan}
        say(f"{user}: {len(queries)} queries; count plan: {plan[-1]}")
    return plans


def warm_up(port: int, host: str, tokens: dict[str, str]) -> dict[str, Any]:
    """Every variant a few times for every user (connections, caches); each user's meta."""
    import json

    metas: dict[str, Any] = {}
    for user, token in tokens.items():
        for name, path in VARIANTS.items():
            for _ in range(WARM_UP_REQUESTS):
                status, _, body = request_once(port, host, path, token)
                if status != 200:
                    raise RuntimeError(f"{user} {name}: HTTP {status} on warm-up: {body!r}")
            if name == "numbered":
                metas[user] = json.loads(body)["meta"]
        say(f"{user}: meta {metas[user]}")
    return metas


def measure(
    port: int, host: str, tokens: dict[str, str]
) -> tuple[dict[str, dict[str, list[float]]], dict[str, list[float]]]:
    """Latencies by user and variant, and each user's per-round ratio of the medians."""
    latencies: dict[str, dict[str, list[float]]] = {
        user: {name: [] for name in VARIANTS} for user in USERS
    }
    ratios: dict[str, list[float]] = {user: [] for user in USERS}
    for round_index in range(ROUNDS):
        for user, token in tokens.items():
            order = list(VARIANTS) if round_index % 2 == 0 else list(reversed(VARIANTS))
            medians = {}
            for name in order:
                got = []
                for _ in range(REQUESTS_PER_ROUND):
                    status, elapsed, _ = request_once(port, host, VARIANTS[name], token)
                    if status != 200:
                        raise RuntimeError(f"{user} {name}: HTTP {status}")
                    got.append(elapsed)
                latencies[user][name].extend(got)
                medians[name] = statistics.median(got)
            ratios[user].append(medians["numbered"] / medians["cursor"])
            say(
                f"round {round_index + 1}/{ROUNDS} {user}: cursor "
                f"{medians['cursor'] * 1000:.1f} ms, numbered {medians['numbered'] * 1000:.1f} ms"
            )
    return latencies, ratios


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="page_metadata", details={})
    with bench_database("page_metadata") as database_url:
        os.environ.setdefault("DEBUG", "false")
        django_setup("settings.dev")
        from tenants.services import template_schema_ensure, tenant_host

        say(f"migrating, provisioning the bench tenant and {PATIENTS:,} patients (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        seeded = seed(database_url)
        say(f"patients loaded in {seeded['load_seconds']:.1f} s")
        count_timing = count_sql_ms(seeded["schema"], database_url)
        host = tenant_host(SLUG)
        plans = count_plans(host)
        from django.db import connections

        connections.close_all()
        port = free_port()
        log = output.with_suffix(".gunicorn.log")
        with gunicorn(app="settings.wsgi:application", port=port, log=log, workers=1):
            tokens = {user: token_for(port, host, email) for user, email in USERS.items()}
            metas = warm_up(port, host, tokens)
            latencies, ratios = measure(port, host, tokens)
    for user in USERS:
        for name in VARIANTS:
            summary = summarize(latencies[user][name])
            result.add(f"{user}, {name} page: p50 latency", summary.p50 * 1000, "ms")
            result.add(f"{user}, {name} page: p95 latency", summary.p95 * 1000, "ms")
        ratio = statistics.median(ratios[user])
        result.add(
            f"{user}: numbered / cursor p50 latency (median of per-round ratios)",
            ratio,
            "x",
            target=f"<= {TARGET}x",
            status=pass_fail(ratio <= TARGET),
        )
    result.add(
        "bounded count alone (tenant_admin's SQL), p50", count_timing["admin_count_ms_p50"], "ms"
    )
    result.details = {
        "patients": PATIENTS,
        "facilities": FACILITIES,
        "page_size": PAGE_SIZE,
        "rounds": ROUNDS,
        "requests_per_round": REQUESTS_PER_ROUND,
        "load_seconds": seeded["load_seconds"],
        "meta": metas,
        "ratios_per_round": ratios,
        "count_plans": plans,
    }
    result.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
