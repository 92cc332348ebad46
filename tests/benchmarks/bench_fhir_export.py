"""FHIR Bulk Data export (issue 17): a clinic tenant of 100,000 patients and 200,000 appointments
exported through ``[base]/$export`` by a real Celery worker (prefork, one child), side by side
with today's synchronous NDJSON stream (``GET /api/v1/clinical/fhir/export/``, patients only).

Measured:

- the kick-off's latency over HTTP and its ``Retry-After`` (target: answered with Retry-After
  <= 1 s);
- server-side time from job start (the worker claiming it, ``started_at``) to the manifest
  (``finished_at``), and resources per second over it (target: >= 20,000 /s);
- the peak RSS of the worker child that ran the export, sampled every 50 ms (target: <= 200 MB);
- patients only, both ways: the Bulk export with ``_type=Patient`` (job start to manifest) and the
  synchronous stream (request to last byte, read by the client).

The rows are COPYed in (psycopg ``COPY ... FROM STDIN``) with triggers off for the loading
session (``session_replication_role = replica``: the sync change log is not what is measured).

    make bench BENCH_ARGS=fhir_export
    BENCH_PATIENTS=10000 python -m tests.benchmarks.bench_fhir_export --output /tmp/r.json
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.benchmarks.common import (
    Result,
    RssSampler,
    bench_database,
    clinic_staff,
    cpu_seconds,
    django_setup,
    http_json,
    mib,
    migrate_public_schema,
    output_path,
    pass_fail,
    say,
    unthrottled_tenant_provision,
)
from tests.benchmarks.serving import celery_worker, free_port, gunicorn

PATIENTS = int(os.environ.get("BENCH_PATIENTS", "100000"))
APPOINTMENTS = int(os.environ.get("BENCH_APPOINTMENTS", str(2 * PATIENTS)))
FACILITIES = 10
CLINICIANS = 20
SLUG = "benchbulk"
PASSWORD = "Quartz-Lantern-4417"
QUEUE = "bench-fhir-bulk"
RATE_TARGET = 20_000
MEMORY_TARGET_MB = 200
RETRY_AFTER_TARGET = 1
PATIENT_COLUMNS = (
    "id", "created_at", "updated_at", "version", "mrn", "given_name", "family_name",
    "birth_date", "sex", "phone", "sms_opt_in", "visit_count", "facility_id",
    "assigned_clinician_id", "phone_is_mobile",
)  # fmt: skip
APPOINTMENT_COLUMNS = (
    "id", "created_at", "updated_at", "version", "patient_id", "clinician_id", "facility_id",
    "starts_at", "ends_at", "status", "reason", "cancellation_reason",
)  # fmt: skip
GIVEN = ("Ada", "Grace", "Alan", "Mary", "Omar", "Yuki", "Amara", "Lars")
FAMILY = ("Lovelace", "Hopper", "Turing", "Seacole", "Haddad", "Okafor", "Berg", "Tanaka")
STATUSES = ("scheduled", "checked_in", "completed", "cancelled", "no_show")


# --- data ----------------------------------------------------------------------------------------


def seed(database_url: str) -> dict[str, Any]:
    from django.db import connection
    from django_tenants.utils import tenant_context

    tenant = unthrottled_tenant_provision(
        slug=SLUG, name="Bench bulk", kind="clinic", password=PASSWORD
    )
    with tenant_context(tenant):
        facilities, clinicians = clinic_staff(
            slug=SLUG, facilities=FACILITIES, clinicians=CLINICIANS
        )
    connection.close()
    started = time.perf_counter()
    patients: list[tuple[str, Any]] = []
    copy_rows(
        database_url,
        table=f'"{tenant.schema_name}".clinical_patient',
        columns=PATIENT_COLUMNS,
        rows=_patients([f.pk for f in facilities], [c.pk for c in clinicians], patients),
    )
    copy_rows(
        database_url,
        table=f'"{tenant.schema_name}".clinical_appointment',
        columns=APPOINTMENT_COLUMNS,
        rows=_appointments(patients, [c.pk for c in clinicians]),
    )
    return {"schema": tenant.schema_name, "load_seconds": time.perf_counter() - started}


def _patients(
    facility_ids: list[Any], clinician_ids: list[Any], written: list[tuple[str, Any]]
) -> Any:
    """The patient rows; each one's (id, facility id) is appended to ``written`` as it goes (the
    appointments are booked at the patient's facility)."""
    import uuid_utils

    from clinical.rules import phone_is_mobile

    rng = random.Random(17)  # noqa: S311  (bench data)
    now = datetime.now(UTC)
    for i in range(PATIENTS):
        phone = f"+49151{10**7 + i:08d}"
        patient_id, facility_id = str(uuid_utils.uuid7()), facility_ids[i % len(facility_ids)]
        written.append((patient_id, facility_id))
        yield (
            patient_id, now, now, 1, f"P-{i:08d}",
            GIVEN[rng.randrange(len(GIVEN))], FAMILY[rng.randrange(len(FAMILY))],
            date(1940, 1, 1) + timedelta(days=rng.randrange(30_000)),
            ("female", "male", "other", "unknown")[i % 4], phone,
            i % 3 == 0, 0, facility_id,
            clinician_ids[i % len(clinician_ids)] if i % 7 else None,
            # What the patient services store with the phone (clinical.rules).
            phone_is_mobile(phone=phone),
        )  # fmt: skip


def _appointments(patients: list[tuple[str, Any]], clinician_ids: list[Any]) -> Any:
    import uuid_utils

    now = datetime.now(UTC)
    base = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)
    for i in range(APPOINTMENTS):
        patient_id, facility_id = patients[i % len(patients)]
        # Each clinician's slots follow each other (30 minutes apart): no double booking.
        start = base + timedelta(minutes=30 * (i // len(clinician_ids)))
        status = STATUSES[i % len(STATUSES)]
        yield (
            str(uuid_utils.uuid7()), now, now, 1, patient_id, clinician_ids[i % len(clinician_ids)],
            facility_id, start, start + timedelta(minutes=20), status,
            "Check-up" if i % 2 else "", "Patient called" if status == "cancelled" else "",
        )  # fmt: skip


def copy_rows(database_url: str, *, table: str, columns: tuple[str, ...], rows: Any) -> None:
    """COPY ``rows`` into ``table`` with triggers off, then VACUUM ANALYZE it."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
            with conn.cursor() as cursor, cursor.copy(sql) as copy:
                for index, row in enumerate(rows):
                    copy.write_row(row)
                    if index and index % 100_000 == 0:
                        say(f"{index:,} rows copied into {table}")
        conn.execute(f"VACUUM ANALYZE {table}")


# --- serving -------------------------------------------------------------------------------------


def export_worker(log: Path) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    """A Celery worker (prefork, one child) consuming the export queue."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.dev",
        "DEBUG": "false",
        "LOG_FORMAT": "plain",
    }
    return celery_worker(queue=QUEUE, log=log, env=env, pool="prefork", concurrency=1)


def only_child_pid(pid: int) -> int:
    """The one child process of ``pid`` (the prefork worker's pool process)."""
    import psutil  # type: ignore[import-untyped]

    children = psutil.Process(pid).children()
    if len(children) != 1:
        raise RuntimeError(f"expected one worker child, found {len(children)}")
    return int(children[0].pid)


def request(
    port: int, host: str, path: str, token: str = "", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        sent = {"Host": host, **(headers or {})}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        connection.request("GET", path, headers=sent)
        response = connection.getresponse()
        body = response.read()
        return response.status, dict(response.getheaders()), body, time.perf_counter() - started
    finally:
        connection.close()


def token_for(port: int, host: str) -> str:
    credentials = {"email": f"admin@{SLUG}.test", "password": PASSWORD}
    _, data, _, _ = http_json(port, host, "POST", "/api/v1/auth/token/", body=credentials)
    return str(data["access"])


def bulk_export(port: int, host: str, token: str, query: str, schema: str) -> dict[str, Any]:
    """Kick off, poll as Retry-After says, and read the job's own timings from its row."""
    from django.db import connection
    from django_tenants.utils import schema_context

    from clinical.models import BulkExport

    status, headers, body, kickoff_seconds = request(
        port, host, f"/fhir/R4/$export{query}", token,
        {"Prefer": "respond-async", "Accept": "application/fhir+json"},
    )  # fmt: skip
    if status != 202:
        raise RuntimeError(f"kick-off: HTTP {status}: {body!r}")
    retry_after = int(headers["Retry-After"])
    poll_path = urlsplit(headers["Content-Location"]).path
    kicked = time.perf_counter()
    polls = 0
    while True:
        time.sleep(max(retry_after, 0.2))
        status, headers, body, _ = request(port, host, poll_path, token)
        polls += 1
        if status == 200:
            break
        if status != 202:
            raise RuntimeError(f"poll: HTTP {status}: {body!r}")
    wall = time.perf_counter() - kicked
    manifest = json.loads(body)
    export_id = poll_path.rsplit("/", 1)[-1]
    with schema_context(schema):
        export = BulkExport.objects.get(pk=export_id)
        started, finished = export.started_at, export.finished_at
        if started is None or finished is None:
            raise RuntimeError(f"export {export_id} has no start or finish time")
        server = (finished - started).total_seconds()
        queued = (started - export.created_at).total_seconds()
    connection.close()
    count = sum(item["count"] for item in manifest["output"])
    return {
        "kickoff_seconds": kickoff_seconds,
        "retry_after": retry_after,
        "server_seconds": server,
        "queued_seconds": queued,
        "wall_seconds": wall,
        "polls": polls,
        "resources": count,
        "by_type": {item["type"]: item["count"] for item in manifest["output"]},
        "rate": count / server,
    }


def sync_stream(port: int, host: str, token: str) -> dict[str, Any]:
    status, _, body, seconds = request(
        port, host, "/api/v1/clinical/fhir/export/", token, {"Accept": "*/*"}
    )
    if status != 200:
        raise RuntimeError(f"sync export: HTTP {status}: {body[:300]!r}")
    lines = body.count(b"\n")
    return {"seconds": seconds, "resources": lines, "rate": lines / seconds, "bytes": len(body)}


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="fhir_export", details={})
    media = Path(tempfile.mkdtemp(prefix="bench-fhir-bulk-"))
    os.environ.update(
        FHIR_BULK_QUEUE=QUEUE, MEDIA_ROOT=str(media), FHIR_BULK_RETRY_AFTER_SECONDS="1"
    )
    load_start = os.getloadavg()
    with (
        bench_database("fhir_export") as database_url,
        contextlib.ExitStack() as cleanup,
    ):
        cleanup.callback(shutil.rmtree, media, ignore_errors=True)
        os.environ.setdefault("DEBUG", "false")
        django_setup("settings.dev")
        from django.db import connections

        from tenants.services import template_schema_ensure, tenant_host

        say(f"provisioning, {PATIENTS:,} patients and {APPOINTMENTS:,} appointments (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        seeded = seed(database_url)
        say(f"rows loaded in {seeded['load_seconds']:.1f} s")
        connections.close_all()
        host = tenant_host(SLUG)
        port = free_port()
        with (
            gunicorn(app="settings.wsgi:application", port=port,
                     log=output.with_suffix(".gunicorn.log"), workers=1),
            export_worker(output.with_suffix(".worker.log")) as worker,
        ):  # fmt: skip
            token = token_for(port, host)
            say("warm-up: a small export (Organization and Location)")
            bulk_export(port, host, token, "?_type=Organization,Location", seeded["schema"])
            child = only_child_pid(worker.pid)
            say("everything")
            # The worker child's own CPU: with the machine shared, the export's cost per resource.
            cpu_before = cpu_seconds(child)
            with RssSampler(pid=child, interval=0.05) as sampler:
                full = bulk_export(port, host, token, "", seeded["schema"])
            full["worker_cpu_seconds"] = cpu_seconds(child) - cpu_before
            say(f"everything: {full}")
            say("patients only, bulk")
            patients_bulk = bulk_export(port, host, token, "?_type=Patient", seeded["schema"])
            say(f"patients only, bulk: {patients_bulk}")
            say("patients only, synchronous stream")
            stream = sync_stream(port, host, token)
            say(f"patients only, sync: {stream}")
    peak_mb = mib(sampler.peak.single_rss_bytes)
    result.add(
        "kick-off latency (HTTP, client side)", full["kickoff_seconds"] * 1000, "ms",
        target="answered with Retry-After <= 1 s",
        status=pass_fail(full["kickoff_seconds"] <= 1 and full["retry_after"] <= RETRY_AFTER_TARGET),
    )  # fmt: skip
    result.add("kick-off Retry-After", full["retry_after"], "s")
    result.add(
        f"everything ({full['resources']:,} resources): job start to manifest",
        full["server_seconds"], "s",
    )  # fmt: skip
    result.add(
        "everything: resources per second (job start to manifest)", full["rate"], "resources/s",
        target=f">= {RATE_TARGET:,}", status=pass_fail(full["rate"] >= RATE_TARGET),
    )  # fmt: skip
    result.add(
        "worker child peak RSS during the export", peak_mb, "MiB",
        target=f"<= {MEMORY_TARGET_MB} MB", status=pass_fail(peak_mb <= MEMORY_TARGET_MB),
    )  # fmt: skip
    result.add("everything: kick-off to manifest seen by the client", full["wall_seconds"], "s")
    result.add(
        "everything: resources per CPU-second of the worker child",
        full["resources"] / full["worker_cpu_seconds"], "resources/s",
    )  # fmt: skip
    result.add(
        "patients only, bulk: resources per second (job start to manifest)",
        patients_bulk["rate"], "resources/s",
    )  # fmt: skip
    result.add(
        "patients only, synchronous stream: resources per second (request to last byte)",
        stream["rate"], "resources/s",
    )  # fmt: skip
    result.details = {
        "patients": PATIENTS,
        "appointments": APPOINTMENTS,
        "load_seconds": seeded["load_seconds"],
        "load_average_at_start": load_start,
        "load_average_at_end": os.getloadavg(),
        "cpus": os.cpu_count(),
        "everything": full,
        "patients_bulk": patients_bulk,
        "patients_sync_stream": stream,
        "rss_samples": sampler.peak.samples,
    }
    result.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
