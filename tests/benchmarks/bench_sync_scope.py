"""GET /api/v1/sync/pull/?limit=500 through gunicorn, as a field_agent granted VIEW on 1 farm:
in a tenant of 1,000 farms with 1,000 observations each (1,000,000 observations, 1,002,000
change-log entries), against a tenant holding only that one farm and its 1,000 observations.

Target ("pull cost bounded by scope"): the big tenant's median page latency within 2x of the
small tenant's. A scoped page merges one ordered range of ``sync_change_by_scope`` per container
(platform/sync/pull.py ``_log_page``), so the other 999 farms must not be read.

Each device first pulls everything (pages until ``has_more`` is false) and keeps the cursor;
then 5 new observations are written in every farm (5,000 entries in the big tenant, 5 of them in
the agent's farm; 5 in the small one). Timed, interleaved round by round in both tenants: the
pull from that saved cursor (the same cursor every round, so every round reads the same page of
5 observations) and the first page of a pull without a cursor (501 of the agent's ~1,000
entries). The details hold the page's log query with EXPLAIN (ANALYZE, BUFFERS), run in-process
on the query the pull itself issued.

    python -m tests.benchmarks.bench_sync_scope --output result.json

The data is written set-wise (INSERT ... SELECT over generate_series, 100 farms per statement)
through the real change-log triggers, which write the log per statement.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
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

BIG_FARMS = 1_000
OBSERVATIONS_PER_FARM = 1_000
FARMS_PER_STATEMENT = 100
NEW_PER_FARM = 5
LIMIT = 500
ROUNDS = 30
WARMUP = 3
WORKERS = 2
QUERY_RUNS = 20  # plain executions of the log query per plan examined
MAX_RATIO = 2.0
PASSWORD = "Quartz-Lantern-4417"
AGENT_FARM = "Farm 0500"  # the agent's farm in the big tenant (the small one has only it)
SQUARE = [[36.0, -0.4], [36.01, -0.4], [36.01, -0.39], [36.0, -0.39], [36.0, -0.4]]
LOG_QUERY = re.compile(r"\bFROM\s+(sync_change|sync_change_by_scope)\b")


@dataclass
class Side:
    """One tenant of the comparison and what the run measured in it."""

    label: str
    slug: str
    farms: int
    tenant: Any = None
    host: str = ""
    agent_email: str = ""
    agent_farm_id: str = ""
    token: str = ""
    cursor: str = ""
    full_pull_pages: int = 0
    full_pull_rows: int = 0
    incremental: list[float] = field(default_factory=list)
    first_page: list[float] = field(default_factory=list)
    incremental_rows: int = 0
    first_page_rows: int = 0
    incremental_bytes: int = 0
    first_page_bytes: int = 0


# --- seeding -------------------------------------------------------------------------------------


def provision(side: Side) -> None:
    from tenants.services import tenant_host

    side.tenant = unthrottled_tenant_provision(
        slug=side.slug, name=f"Bench sync scope ({side.label})", kind="farm", password=PASSWORD
    )
    side.host = tenant_host(side.slug)


def seed(side: Side) -> None:
    """``side.farms`` farms (one field each) and 1,000 observations per field, set-wise; the
    triggers log every row (and index it by farm) per statement."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    started = time.perf_counter()
    with tenant_context(side.tenant), connection.cursor() as db:
        if side.farms == 1:
            db.execute(
                "INSERT INTO farms_farm (id, created_at, updated_at, version, name, region, "
                "timezone) VALUES (gen_random_uuid(), now(), now(), 1, %s, '', 'UTC')",
                [AGENT_FARM],
            )
        else:
            db.execute(
                "INSERT INTO farms_farm (id, created_at, updated_at, version, name, region, "
                "timezone) "
                "SELECT gen_random_uuid(), now(), now(), 1, 'Farm ' || lpad(g::text, 4, '0'), "
                "'', 'UTC' FROM generate_series(1, %s) AS g",
                [side.farms],
            )
        db.execute(
            "INSERT INTO farms_field (id, created_at, updated_at, version, farm_id, name, "
            "boundary, area_ha, bbox_min_lon, bbox_min_lat, bbox_max_lon, bbox_max_lat) "
            "SELECT gen_random_uuid(), now(), now(), 1, f.id, 'Field of ' || f.name, %s::jsonb, "
            "1.0, 36.0, -0.4, 36.01, -0.39 FROM farms_farm f",
            [json.dumps({"type": "Polygon", "coordinates": [SQUARE]})],
        )
        for offset in range(0, side.farms, FARMS_PER_STATEMENT):
            db.execute(
                _OBSERVATIONS,
                {"offset": offset, "fields": FARMS_PER_STATEMENT, "per": OBSERVATIONS_PER_FARM},
            )
            done = min(offset + FARMS_PER_STATEMENT, side.farms) * OBSERVATIONS_PER_FARM
            say(
                f"{side.label}: {done:,} observations written "
                f"({time.perf_counter() - started:.0f} s)"
            )
        db.execute("SELECT id::text FROM farms_farm WHERE name = %s", [AGENT_FARM])
        side.agent_farm_id = db.fetchone()[0]
    vacuum_analyze(side)
    say(f"{side.label}: seeded and analyzed in {time.perf_counter() - started:.0f} s")


# Fields ordered by id, ``fields`` of them from ``offset``: one statement per slice of farms.
_OBSERVATIONS = """
INSERT INTO farms_observation (id, created_at, updated_at, version, field_id, observed_at, kind,
                               value, unit, text, device_id)
SELECT gen_random_uuid(), now(), now(), 1, fl.id, now() - g * interval '1 minute',
       'soil_moisture', 20 + g %% 10, '%%', 'reading ' || g, ''
  FROM (SELECT id FROM farms_field ORDER BY id OFFSET %(offset)s LIMIT %(fields)s) fl
 CROSS JOIN generate_series(1, %(per)s) AS g
"""


def vacuum_analyze(side: Side) -> None:
    """What autovacuum would have done by then (statistics, visibility map, hint bits)."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    with tenant_context(side.tenant), connection.cursor() as db:
        for table in (
            "farms_farm",
            "farms_field",
            "farms_observation",
            "sync_change",
            "sync_change_by_scope",
        ):
            db.execute(f"VACUUM (ANALYZE) {table}")


def make_agent(side: Side) -> None:
    """A field_agent with VIEW on the agent's farm, granted like the tests do."""
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from accounts.roles import Role
    from apikit.policy import AccessLevel, container_access_grant
    from farms.models import Farm

    side.agent_email = f"agent@{side.slug}.test"
    with tenant_context(side.tenant):
        agent = User(
            email=side.agent_email, role=Role.FIELD_AGENT, is_active=True, full_name="Agent"
        )
        agent.set_password(PASSWORD)
        agent.save()
        farm = Farm.objects.get(pk=side.agent_farm_id)
        container_access_grant(user=agent, container=farm, level=AccessLevel.VIEW)


def write_new_observations(side: Side) -> None:
    """``NEW_PER_FARM`` new observations in every farm of the tenant, one statement."""
    from django.db import connection
    from django_tenants.utils import tenant_context

    with tenant_context(side.tenant), connection.cursor() as db:
        db.execute(
            "INSERT INTO farms_observation (id, created_at, updated_at, version, field_id, "
            "observed_at, kind, value, unit, text, device_id) "
            "SELECT gen_random_uuid(), now(), now(), 1, fl.id, now(), 'rainfall', g, 'mm', "
            "'new ' || g, '' FROM farms_field fl CROSS JOIN generate_series(1, %s) AS g",
            [NEW_PER_FARM],
        )


def log_sizes(side: Side) -> dict[str, int]:
    from django.db import connection
    from django_tenants.utils import tenant_context

    with tenant_context(side.tenant), connection.cursor() as db:
        db.execute(
            "SELECT (SELECT count(*) FROM sync_change), (SELECT count(*) FROM sync_change_by_scope),"
            " (SELECT count(*) FROM sync_change_by_scope WHERE scope_id = %s::uuid),"
            " (SELECT count(*) FROM farms_observation)",
            [side.agent_farm_id],
        )
        log, by_scope, agent_range, observations = db.fetchone()
    return {
        "sync_change": int(log),
        "sync_change_by_scope": int(by_scope),
        "agent_farm_range": int(agent_range),
        "observations": int(observations),
    }


# --- HTTP ----------------------------------------------------------------------------------------


def login(port: int, side: Side) -> None:
    status, tokens, _, _ = http_json(
        port,
        side.host,
        "POST",
        "/api/v1/auth/token/",
        body={"email": side.agent_email, "password": PASSWORD},
    )
    if status != 200:
        raise RuntimeError(f"{side.label}: login answered {status}: {tokens}")
    side.token = tokens["access"]


def pull_path(cursor: str | None) -> str:
    params = {"limit": str(LIMIT), **({"cursor": cursor} if cursor else {})}
    return f"/api/v1/sync/pull/?{urlencode(params)}"


def pull(port: int, side: Side, cursor: str | None) -> tuple[dict[str, Any], float, int]:
    status, body, elapsed, size = http_json(port, side.host, "GET", pull_path(cursor), side.token)
    if status != 200:
        raise RuntimeError(f"{side.label}: pull answered {status}: {body}")
    return body, elapsed, size


def upserted(body: dict[str, Any]) -> int:
    return sum(len(table["upserted"]) for table in body["changes"].values())


def full_pull(port: int, side: Side) -> None:
    """What the device does first: pages until ``has_more`` is false; keeps the last cursor."""
    cursor: str | None = None
    while True:
        body, _, _ = pull(port, side, cursor)
        side.full_pull_pages += 1
        side.full_pull_rows += upserted(body)
        cursor = body["cursor"]
        if not body["has_more"]:
            break
    if cursor is None:  # pragma: no cover - a page always carries a cursor
        raise RuntimeError("no cursor")
    side.cursor = cursor


def measure(port: int, sides: list[Side]) -> None:
    """Round by round, both tenants (alternating which goes first): the page from the saved
    cursor, then the first page of a pull without a cursor."""
    for side in sides:
        for _ in range(WARMUP):  # both workers, both kinds of page
            pull(port, side, side.cursor)
            pull(port, side, None)
    for round_number in range(ROUNDS):
        ordered = sides if round_number % 2 == 0 else list(reversed(sides))
        for side in ordered:
            body, elapsed, size = pull(port, side, side.cursor)
            if body["has_more"] or upserted(body) != NEW_PER_FARM:
                raise RuntimeError(f"{side.label}: unexpected incremental page: {upserted(body)}")
            side.incremental.append(elapsed)
            side.incremental_rows, side.incremental_bytes = upserted(body), size
            body, elapsed, size = pull(port, side, None)
            if not body["has_more"]:
                raise RuntimeError(f"{side.label}: the first page should not be the last")
            side.first_page.append(elapsed)
            side.first_page_rows, side.first_page_bytes = upserted(body), size


# --- the log query's plan ------------------------------------------------------------------------


@dataclass(frozen=True)
class Captured:
    sql: str
    params: Any
    ms: float


@contextmanager
def capture_queries(found: list[Captured]) -> Iterator[None]:
    from django.db import connection

    def wrapper(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            found.append(Captured(sql, params, (time.perf_counter() - started) * 1000))

    with connection.execute_wrapper(wrapper):
        yield


# Planner settings tried on the first page's log query, to see what the plan chose against.
ALTERNATIVES = {
    "serial": {"max_parallel_workers_per_gather": "0"},
    "index scans only": {
        "max_parallel_workers_per_gather": "0",
        "enable_bitmapscan": "off",
        "enable_seqscan": "off",
    },
}


def examine(side: Side, cursor: str | None, *, alternatives: bool) -> dict[str, Any]:
    """Run the pull in-process (twice: the second, warm, is kept), time each of its queries,
    catch the change-log query and run it again under EXPLAIN (ANALYZE, BUFFERS) in a
    REPEATABLE READ transaction like the pull's."""
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from sync.pull import PullRequest, sync_pull

    with tenant_context(side.tenant):
        agent = User.objects.get(email=side.agent_email)
        for _ in range(2):
            found: list[Captured] = []
            with capture_queries(found):
                sync_pull(
                    user=agent,
                    request=PullRequest(cursor=cursor, limit=LIMIT, tables=None),
                    context=None,
                )
        log = [query for query in found if LOG_QUERY.search(query.sql) and "LIMIT" in query.sql]
        if len(log) != 1:
            raise RuntimeError(f"expected one change-log query, caught {len(log)}")
        plan = explain(log[0].sql, log[0].params, {})
        plan["queries_ms"] = [
            {"sql": " ".join(query.sql.split())[:100], "ms": round(query.ms, 2)} for query in found
        ]
        if alternatives:
            plan["alternatives"] = {
                name: explain(log[0].sql, log[0].params, settings)
                for name, settings in ALTERNATIVES.items()
            }
    return plan


def explain(sql: str, params: Any, planner: dict[str, str]) -> dict[str, Any]:
    """The plan (JSON summary and text) and the median of ``QUERY_RUNS`` plain executions (one
    EXPLAIN ANALYZE is one sample, and parallel workers' start-up varies with the load)."""
    from django.db import connection, transaction

    plans: dict[str, Any] = {}
    runs = []
    for _ in range(QUERY_RUNS):
        with transaction.atomic(), connection.cursor() as db:
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            for name, value in planner.items():  # names and values from ALTERNATIVES
                db.execute(f"SET LOCAL {name} = {value}")
            started = time.perf_counter()
            db.execute(sql, params)
            db.fetchall()
            runs.append((time.perf_counter() - started) * 1000)
    for fmt in ("JSON", "TEXT"):
        with transaction.atomic(), connection.cursor() as db:
            db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            for name, value in planner.items():  # names and values from ALTERNATIVES
                db.execute(f"SET LOCAL {name} = {value}")
            db.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT {fmt}) {sql}", params)
            rows = db.fetchall()
        plans[fmt] = rows[0][0] if fmt == "JSON" else "\n".join(row[0] for row in rows)
    plan_json = plans["JSON"]
    if isinstance(plan_json, str):
        plan_json = json.loads(plan_json)
    summary = plan_summary(plan_json[0], sql=sql, text=plans["TEXT"])
    summary["median_ms"] = summarize(runs).p50
    return summary


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def plan_summary(explained: dict[str, Any], *, sql: str, text: str) -> dict[str, Any]:
    root = explained["Plan"]
    nodes = list(_nodes(root))
    scans = [
        {
            "node": node["Node Type"],
            "relation": node.get("Relation Name", ""),
            "index": node.get("Index Name", ""),
            "rows": node["Actual Rows"] * node["Actual Loops"],
            "shared_hit": node.get("Shared Hit Blocks", 0),
            "shared_read": node.get("Shared Read Blocks", 0),
        }
        for node in nodes
        if node.get("Relation Name") in {"sync_change", "sync_change_by_scope"}
    ]
    merged = any(node["Node Type"] == "Merge Append" for node in nodes)
    index_scans = bool(scans) and all(scan["node"] == "Index Scan" for scan in scans)
    rows_read = sum(scan["rows"] for scan in scans)
    # Each range may read one row past what the Merge Append consumed before the LIMIT stopped it.
    bounded = rows_read <= LIMIT + 1 + len(scans)
    return {
        "merge_append": merged,
        "index_scans_only": index_scans,
        "rows_read_from_log": rows_read,
        "bounded_by_limit": bounded,
        "ok": merged and index_scans and bounded,
        "shape": plan_shape(root),
        "scans": scans,
        "shared_hit": root.get("Shared Hit Blocks", 0),
        "shared_read": root.get("Shared Read Blocks", 0),
        "rows_returned": root["Actual Rows"],
        "execution_ms": explained.get("Execution Time"),
        "planning_ms": explained.get("Planning Time"),
        "sql": sql,
        "text": text,
    }


def plan_shape(node: dict[str, Any]) -> str:
    """``Limit > Unique > Merge Append [Index Scan ... (5 rows), ...]``: the plan tree in one line."""
    label = node["Node Type"]
    if node.get("Index Name") or node.get("Relation Name"):
        rows = node["Actual Rows"] * node["Actual Loops"]
        label += f" {node.get('Index Name') or node['Relation Name']} ({rows} rows)"
    children = [plan_shape(child) for child in node.get("Plans", [])]
    if len(children) == 1:
        return f"{label} > {children[0]}"
    if children:
        return f"{label} [{', '.join(children)}]"
    return label


def describe_plan(name: str, plan: dict[str, Any]) -> None:
    say(
        f"plan {name}: {plan['shape']}; buffers hit {plan['shared_hit']} read "
        f"{plan['shared_read']}; EXPLAIN ANALYZE {plan['execution_ms']:.2f} ms, median of "
        f"{QUERY_RUNS} runs {plan['median_ms']:.2f} ms"
    )


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="sync_scope", details={})
    small = Side(label="small", slug="benchscope-small", farms=1)
    big = Side(label="big", slug="benchscope-big", farms=BIG_FARMS)
    sides = [small, big]
    with bench_database("sync_scope"):
        os.environ.setdefault("DEBUG", "false")
        django_setup("settings.dev")
        from django.db import connections

        from tenants.services import template_schema_ensure
        from tenants.template_script import template_script

        say("migrating and provisioning the two tenants (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        # Dump the template afresh rather than replay a stored script: the benchmark measures the
        # schema as it is in this tree.
        template_script(refresh=True)
        seeding_started = time.perf_counter()
        for side in sides:
            provision(side)
            say(f"{side.label}: {side.farms:,} farm(s) x {OBSERVATIONS_PER_FARM:,} observations")
            seed(side)
            make_agent(side)
        seeding_seconds = time.perf_counter() - seeding_started
        connections.close_all()
        port = free_port()
        log = output.with_suffix(".gunicorn.log")
        with gunicorn(app="settings.wsgi:application", port=port, log=log, workers=WORKERS):
            for side in sides:
                login(port, side)
            say(f"waited {watermark_settle():.1f} s for older transactions elsewhere to finish")
            for side in sides:
                full_pull(port, side)
                say(
                    f"{side.label}: full pull, {side.full_pull_pages} pages, "
                    f"{side.full_pull_rows:,} rows; the device keeps the last cursor"
                )
            for side in sides:
                write_new_observations(side)
            say(f"waited {watermark_settle():.1f} s for older transactions elsewhere to finish")
            sizes = {side.label: log_sizes(side) for side in sides}
            for side in sides:
                say(f"{side.label}: {sizes[side.label]}")
            say(f"timing {ROUNDS} interleaved rounds (incremental page + first page per tenant)")
            measure(port, sides)
            for side in sides:
                say(
                    f"{side.label}: incremental p50 "
                    f"{summarize(side.incremental).p50 * 1000:.1f} ms, first page p50 "
                    f"{summarize(side.first_page).p50 * 1000:.1f} ms"
                )
            plans = {
                f"{side.label} {kind}": examine(side, cursor, alternatives=cursor is None)
                for side in sides
                for kind, cursor in (("incremental", side.cursor), ("first page", None))
            }
            for name, plan in plans.items():
                describe_plan(name, plan)
                for alternative, other in plan.get("alternatives", {}).items():
                    describe_plan(f"{name}, {alternative}", other)
            connections.close_all()
    report(result, small=small, big=big, plans=plans)
    result.details.update(
        {
            "farms_big": BIG_FARMS,
            "observations_per_farm": OBSERVATIONS_PER_FARM,
            "new_observations_per_farm": NEW_PER_FARM,
            "limit": LIMIT,
            "rounds": ROUNDS,
            "gunicorn_workers": WORKERS,
            "seeding_seconds": seeding_seconds,
            "log_sizes": sizes,
            "full_pull": {
                side.label: {"pages": side.full_pull_pages, "rows": side.full_pull_rows}
                for side in sides
            },
            "response_bytes": {
                side.label: {
                    "incremental": side.incremental_bytes,
                    "first_page": side.first_page_bytes,
                }
                for side in sides
            },
            "latencies_ms": {
                side.label: {
                    "incremental": [round(v * 1000, 2) for v in side.incremental],
                    "first_page": [round(v * 1000, 2) for v in side.first_page],
                }
                for side in sides
            },
            "plans": plans,
        }
    )
    result.write(output)
    return 0


def report(result: Result, *, small: Side, big: Side, plans: dict[str, dict[str, Any]]) -> None:
    for kind, attribute in (("incremental page", "incremental"), ("first page", "first_page")):
        summaries = {side.label: summarize(getattr(side, attribute)) for side in (small, big)}
        for side in (small, big):
            summary = summaries[side.label]
            result.add(f"{kind}, {side.label}: p50 latency", summary.p50 * 1000, "ms")
            result.add(f"{kind}, {side.label}: p95 latency", summary.p95 * 1000, "ms")
        ratio = summaries["big"].p50 / summaries["small"].p50
        result.add(
            f"{kind}: big / small p50",
            ratio,
            "x",
            target=f"<= {MAX_RATIO:.0f}x",
            status=pass_fail(ratio <= MAX_RATIO),
        )
    for side in (small, big):
        result.add(f"incremental page, {side.label}: rows", side.incremental_rows, "rows")
        result.add(f"first page, {side.label}: rows", side.first_page_rows, "rows")
    for name in ("big incremental", "big first page"):
        plan = plans[name]
        result.add(
            f"log query plan, {name}: rows read from the log",
            plan["rows_read_from_log"],
            "rows",
            target="Merge Append of index scans, stops at the LIMIT",
            status=pass_fail(plan["ok"]),
        )
        result.add(
            f"log query plan, {name}: shared buffers",
            plan["shared_hit"] + plan["shared_read"],
            "blocks",
        )
        result.add(f"log query, {name}: median of {QUERY_RUNS}", plan["median_ms"], "ms")
        for alternative, other in plan.get("alternatives", {}).items():
            result.add(
                f"log query, {name} ({alternative}): median of {QUERY_RUNS}",
                other["median_ms"],
                "ms",
            )


if __name__ == "__main__":
    raise SystemExit(main())
