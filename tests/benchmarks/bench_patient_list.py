"""GET /api/v1/clinical/patients/?page_size=50 (nested facility and clinician) over 10,000
patients, served by gunicorn, side by side in one run against:

  (a) naive: the plain recipe from the seeds, a DRF ModelViewSet with a nested ModelSerializer and
      select_related, no other optimisation (same authentication, throttles and pagination);
  (b) floor: a bare Django view running the same SQL with a raw cursor and returning orjson bytes.
      "The same SQL" is the endpoint's two statements: the page query and the INSERT of the
      read's audit event (every page of patient data is audited, DESIGN.md section 4), so the
      floor does the endpoint's database work with no framework around it;
  (b') floor-page-only: the floor without the audit INSERT, reported for reference (the floor
      of earlier runs).

Targets (issue 4): >= 1.5x the throughput of (a), >= 0.5x of (b), and a query count per request
that does not depend on the page size.

    python -m tests.benchmarks.bench_patient_list --output result.json

This module is also the gunicorn application (``application``) and the URLconf of that server
(``urlpatterns``, resolved lazily, after Django is set up): the real tenant routes plus the two
comparison endpoints.
"""

from __future__ import annotations

import http.client
import os
import random
import statistics
import threading
import time
from datetime import date, timedelta
from typing import Any

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
)
from tests.benchmarks.serving import free_port, gunicorn, lazy_urlconf

PATIENTS = 10_000
FACILITIES = 4
CLINICIANS = 20
PAGE_SIZE = 50
# The web pods' gunicorn configuration (settings/gunicorn.conf.py, helm/verdant/values.yaml):
# 2 worker processes of 4 threads. BENCH_GUNICORN_THREADS=1 serves with sync workers instead.
WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", "4"))
# As many requests in flight as the server has threads, so no variant waits on the client.
CLIENT_THREADS = WORKERS * THREADS
# Many short rounds, variants interleaved (order reversed every other round), ratios taken
# within each round and then the median: this VM's speed drifts by +-30 % over a minute, which
# totals over long windows turned into noise on the ratios.
ROUND_SECONDS = float(os.environ.get("BENCH_LIST_ROUND_SECONDS", "2.5"))
WARM_UP_SECONDS = 2.0
ROUNDS = int(os.environ.get("BENCH_LIST_ROUNDS", "8"))
SPEEDUP_TARGET = 1.5
FLOOR_TARGET = 0.5
SLUG = "benchclinic"
PASSWORD = "Quartz-Lantern-4417"
VARIANTS = {
    "verdant": "/api/v1/clinical/patients/",
    "naive": "/bench/naive/patients/",
    "floor": "/bench/floor/patients/",
    "floor-page-only": "/bench/floor-page-only/patients/",
}


# --- the server side: comparison endpoints, URLconf and WSGI application -------------------------


def _naive_viewset() -> Any:
    """The seeds' recipe: ModelViewSet + nested ModelSerializer + select_related."""
    from rest_framework import serializers, viewsets

    from accounts.models import User
    from clinical.models import Facility, Patient

    class FacilitySerializer(serializers.ModelSerializer):
        class Meta:
            model = Facility
            fields = ["id", "code", "name"]

    class ClinicianSerializer(serializers.ModelSerializer):
        class Meta:
            model = User
            fields = ["id", "full_name"]

    class PatientSerializer(serializers.ModelSerializer):
        facility = FacilitySerializer()
        assigned_clinician = ClinicianSerializer(allow_null=True)

        class Meta:
            model = Patient
            fields = [
                "id",
                "mrn",
                "given_name",
                "family_name",
                "birth_date",
                "sex",
                "phone",
                "sms_opt_in",
                "visit_count",
                "facility",
                "assigned_clinician",
                "version",
                "updated_at",
            ]

    class NaivePatientViewSet(viewsets.ModelViewSet):  # noqa: TID251  (the baseline on purpose)
        serializer_class = PatientSerializer
        ordering = "-id"

        def get_queryset(self) -> Any:
            return Patient.objects.select_related("facility", "assigned_clinician")

    return NaivePatientViewSet


_FLOOR_SQL = """
SELECT p.id, p.mrn, p.given_name, p.family_name, p.birth_date, p.sex, p.phone, p.sms_opt_in,
       p.visit_count, p.version, p.updated_at, f.id, f.code, f.name, u.id, u.full_name
FROM clinical_patient p
JOIN clinical_facility f ON f.id = p.facility_id
LEFT JOIN accounts_user u ON u.id = p.assigned_clinician_id
WHERE p.archived_at IS NULL
ORDER BY p.id DESC
LIMIT %s
"""


def _floor_rows(size: int) -> list[dict[str, Any]]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(_FLOOR_SQL, [size + 1])
        rows = cursor.fetchall()
    return [
        {
            "id": str(r[0]),
            "mrn": r[1],
            "given_name": r[2],
            "family_name": r[3],
            "birth_date": r[4].isoformat(),
            "sex": r[5],
            "phone": r[6],
            "sms_opt_in": r[7],
            "visit_count": r[8],
            "facility": {"id": str(r[11]), "code": r[12], "name": r[13]},
            "assigned_clinician": {"id": str(r[14]), "full_name": r[15]} if r[14] else None,
            "version": r[9],
            "updated_at": r[10].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
        for r in rows[:size]
    ]


def _floor_audit(ids: list[str]) -> None:
    """The endpoint's audit INSERT, as raw SQL: one row holding the page's ids."""
    from django.db import connection
    from django.utils import timezone

    from apikit.ids import new_id

    values: dict[str, Any] = {
        "id": new_id(),
        "occurred_at": timezone.now(),
        "actor_id": None,
        "actor_email": "",
        "action": "read",
        "allowed": True,
        "object_type": "clinical.patient",
        "object_ids": "{" + ",".join(ids) + "}",
        "changed_fields": "{}",
        "ip": "127.0.0.1",
        "user_agent": "",
        "request_id": "",
        "trace_id": "",
    }
    columns = ", ".join(values)
    placeholders = ", ".join(["%s"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO audit_auditevent ({columns}) VALUES ({placeholders})",
            list(values.values()),
        )


def _floor_response(results: list[dict[str, Any]]) -> Any:
    import orjson
    from django.http import HttpResponse

    body = {"results": results, "next": None, "previous": None}
    return HttpResponse(orjson.dumps(body), content_type="application/json")


def floor_view(request: Any) -> Any:
    """The floor: the endpoint's statements (page query, audit INSERT) on a raw cursor, orjson
    bytes. No auth, no DRF, no ORM."""
    results = _floor_rows(min(int(request.GET.get("page_size", PAGE_SIZE)), 200))
    _floor_audit([row["id"] for row in results])
    return _floor_response(results)


def floor_page_only_view(request: Any) -> Any:
    """The floor without the audit INSERT: the page query alone."""
    return _floor_response(_floor_rows(min(int(request.GET.get("page_size", PAGE_SIZE)), 200)))


def _urlpatterns() -> list[Any]:
    from django.urls import path

    from settings.urls import urlpatterns as tenant_urlpatterns

    naive = _naive_viewset()
    return [
        path("bench/naive/patients/", naive.as_view({"get": "list"})),
        path("bench/floor/patients/", floor_view),
        path("bench/floor-page-only/patients/", floor_page_only_view),
        *tenant_urlpatterns,
    ]


__getattr__ = lazy_urlconf(__name__, _urlpatterns)


# --- data ----------------------------------------------------------------------------------------


def seed() -> None:
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from accounts.roles import Role
    from clinical.models import Facility, Patient

    # Throttles stay on (every variant pays their Redis round trip) but must not refuse.
    tenant = unthrottled_tenant_provision(
        slug=SLUG,
        name="Bench clinic",
        # Mixed: a clinic tenant's host serves settings.urls_clinic (issue 19, item 6), which
        # has none of the benchmark's own naive / floor routes (ROOT_URLCONF of bench_settings).
        kind="mixed",
        password=PASSWORD,
    )
    rng = random.Random(4)  # noqa: S311  (bench data)
    with tenant_context(tenant):
        facilities = [
            Facility.objects.create(name=f"Clinic {i}", code=f"C{i}", timezone="Europe/Berlin")
            for i in range(FACILITIES)
        ]
        clinicians = [
            User.objects.create(
                email=f"doc{i}@{SLUG}.test",
                role=Role.CLINICIAN,
                is_active=True,
                full_name=f"Dr. Bench {i}",
            )
            for i in range(CLINICIANS)
        ]
        Patient.objects.bulk_create(
            (
                Patient(
                    mrn=f"B-{i:06d}",
                    given_name=rng.choice(["Ada", "Grace", "Alan", "Mary", "Omar", "Yuki"]),
                    family_name=rng.choice(["Lovelace", "Hopper", "Turing", "Seacole", "Haddad"]),
                    birth_date=date(1940, 1, 1) + timedelta(days=rng.randrange(30_000)),
                    sex=rng.choice(["female", "male", "other", "unknown"]),
                    phone=f"+49151{rng.randrange(10**7, 10**8)}",
                    facility=facilities[i % FACILITIES],
                    assigned_clinician=clinicians[i % CLINICIANS] if i % 7 else None,
                )
                for i in range(PATIENTS)
            ),
            batch_size=2000,
        )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f'ANALYZE "t_{SLUG}".clinical_patient')


def query_counts(host: str) -> dict[int, int]:
    """Queries per request of the real endpoint at several page sizes (in-process)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from rest_framework.test import APIClient

    client = APIClient(HTTP_HOST=host)
    token = client.post(
        "/api/v1/auth/token/",
        {"email": f"admin@{SLUG}.test", "password": PASSWORD},
        format="json",
    ).json()["access"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    counts: dict[int, int] = {}
    for size in (10, 50, 200):
        client.get(VARIANTS["verdant"], {"page_size": size})
        with CaptureQueriesContext(connection) as captured:
            response = client.get(VARIANTS["verdant"], {"page_size": size})
        assert response.status_code == 200
        assert len(response.json()["results"]) == size
        counts[size] = len(captured.captured_queries)
    return counts


# --- the load ------------------------------------------------------------------------------------


def request_once(port: int, host: str, path: str, token: str) -> tuple[int, float]:
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(
            "GET",
            f"{path}?page_size={PAGE_SIZE}",
            headers={"Host": host, "Authorization": f"Bearer {token}"},
        )
        response = connection.getresponse()
        response.read()
        return response.status, time.perf_counter() - started
    finally:
        connection.close()


def load(port: int, host: str, path: str, token: str, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        while time.monotonic() < stop:
            status, elapsed = request_once(port, host, path, token)
            with lock:
                if status == 200:
                    latencies.append(elapsed)
                else:
                    errors += 1

    threads = [threading.Thread(target=worker) for _ in range(CLIENT_THREADS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"requests": len(latencies), "errors": errors, "seconds": wall, "latencies": latencies}


def token_for(port: int, host: str) -> str:
    credentials = {"email": f"admin@{SLUG}.test", "password": PASSWORD}
    _, data, _, _ = http_json(port, host, "POST", "/api/v1/auth/token/", body=credentials)
    return str(data["access"])


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="patient_list", details={})
    with bench_database("patient_list"):
        os.environ.setdefault("DEBUG", "false")
        django_setup("settings.dev")
        from tenants.services import template_schema_ensure, tenant_host

        say("migrating, provisioning the bench tenant and 10,000 patients (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        seed()
        host = tenant_host(SLUG)
        counts = query_counts(host)
        say(f"queries per request by page size: {counts}")
        from django.db import connections

        connections.close_all()
        port = free_port()
        log = output.with_suffix(".gunicorn.log")
        per_round: dict[str, list[float]] = {name: [] for name in VARIANTS}
        samples: dict[str, dict[str, Any]] = {
            name: {"requests": 0, "errors": 0, "seconds": 0.0, "latencies": []} for name in VARIANTS
        }
        with gunicorn(
            app="tests.benchmarks.bench_patient_list:application",
            port=port,
            log=log,
            workers=WORKERS,
            threads=THREADS,
        ):
            token = token_for(port, host)
            for name, path in VARIANTS.items():
                status, _ = request_once(port, host, path, token)
                if status != 200:
                    raise RuntimeError(f"{name}: HTTP {status} on warm-up")
                # At full concurrency, so every thread of every worker has its database
                # connection and caches before anything is timed.
                warm = load(port, host, path, token, WARM_UP_SECONDS)
                if warm["errors"]:
                    raise RuntimeError(f"{name}: {warm['errors']} errors on warm-up")
            for round_index in range(ROUNDS):
                order = list(VARIANTS) if round_index % 2 == 0 else list(reversed(VARIANTS))
                for name in order:
                    got = load(port, host, VARIANTS[name], token, ROUND_SECONDS)
                    for key in ("requests", "errors", "seconds"):
                        samples[name][key] += got[key]
                    per_round[name].append(got["requests"] / got["seconds"])
                    samples[name]["latencies"].extend(got["latencies"])
                    say(
                        f"round {round_index + 1}/{ROUNDS} {name}: "
                        f"{got['requests'] / got['seconds']:.1f} req/s, {got['errors']} errors"
                    )
    throughput = {name: s["requests"] / s["seconds"] for name, s in samples.items()}
    for name, s in samples.items():
        latency = summarize(s["latencies"])
        result.add(f"{name}: throughput", throughput[name], "req/s")
        result.add(f"{name}: p50 latency", latency.p50 * 1000, "ms")
        result.add(f"{name}: p95 latency", latency.p95 * 1000, "ms")
        result.add(
            f"{name}: errors",
            s["errors"],
            "requests",
            target="0",
            status=pass_fail(s["errors"] == 0),
        )

    def paired(other: str) -> float:
        """Median over rounds of verdant's throughput over ``other``'s in the same round."""
        return statistics.median(
            mine / theirs
            for mine, theirs in zip(per_round["verdant"], per_round[other], strict=True)
        )

    versus_naive = paired("naive")
    versus_floor = paired("floor")
    result.add(
        "verdant / naive throughput (median of per-round ratios)",
        versus_naive,
        "x",
        target=f">= {SPEEDUP_TARGET}x",
        status=pass_fail(versus_naive >= SPEEDUP_TARGET),
    )
    result.add(
        "verdant / floor throughput (median of per-round ratios)",
        versus_floor,
        "x",
        target=f">= {FLOOR_TARGET}x",
        status=pass_fail(versus_floor >= FLOOR_TARGET),
    )
    result.add(
        "verdant / floor-page-only throughput (reference)",
        paired("floor-page-only"),
        "x",
    )
    result.add_query_counts(counts, per="request", size_name="page_size")

    result.details = {
        "patients": PATIENTS,
        "page_size": PAGE_SIZE,
        "gunicorn_workers": WORKERS,
        "gunicorn_threads": THREADS,
        "client_threads": CLIENT_THREADS,
        "rounds": ROUNDS,
        "round_seconds": ROUND_SECONDS,
        "throughput_per_round": per_round,
        "query_counts": counts,
    }
    result.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
