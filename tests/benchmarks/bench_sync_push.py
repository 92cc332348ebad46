"""POST /api/v1/sync/push/ with 5,000 new observations in one request, served by gunicorn, side
by side in one run against:

  (a) naive: the seeds' recipe, a DRF ``ModelSerializer(many=True)`` whose ListSerializer
      ``create`` is one ``bulk_create`` in ``transaction.atomic`` (PrimaryKeyRelatedField for
      field and planting, so validation queries per row), behind the same authentication and
      throttles, through the same gunicorn;
  (b) floor: psycopg 3 ``COPY ... FROM STDIN`` of the same 5,000 rows from Python (decode the
      same JSON body, write_row per row, commit), no HTTP.

Targets (issue 7): push >= 10x faster than (a), <= 5x (b), and the gunicorn worker's peak RSS
growth during the pushes <= 150 MB.

    python -m tests.benchmarks.bench_sync_push --output result.json

This module is also the gunicorn application (``application``) and its URLconf (the real tenant
routes plus the benchmark-only naive endpoint), resolved lazily after Django is set up.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.benchmarks.common import (
    Result,
    RssSampler,
    bench_database,
    django_setup,
    mib,
    migrate_public_schema,
    output_path,
    pass_fail,
    say,
    summarize,
    unthrottled_tenant_provision,
)
from tests.benchmarks.serving import free_port, gunicorn, lazy_urlconf

ROWS = 5_000
ROUNDS = 5
SPEEDUP_TARGET = 10.0
FLOOR_TARGET = 5.0
MEMORY_TARGET_MIB = 150.0
SLUG = "benchpush"
PASSWORD = "Quartz-Lantern-4417"
FIELD_ID = uuid.UUID("01900000-0000-7000-8000-00000000b001")
PLANTING_ID = uuid.UUID("01900000-0000-7000-8000-00000000b002")


# --- the server side: the naive endpoint, URLconf and WSGI application -------------------------


def _naive_view() -> Any:
    """The seeds' recipe: ModelSerializer(many=True) + ListSerializer.create -> bulk_create."""
    from django.db import transaction
    from rest_framework import serializers, status
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from farms.models import Observation

    class BulkObservationSerializer(serializers.ListSerializer):  # type: ignore[type-arg,unused-ignore]
        @transaction.atomic
        def create(self, validated_data: list[dict[str, Any]]) -> list[Observation]:
            return Observation.objects.bulk_create([Observation(**row) for row in validated_data])

    class ObservationSerializer(serializers.ModelSerializer):  # type: ignore[type-arg,unused-ignore]
        class Meta:
            model = Observation
            fields = ["id", "field", "planting", "observed_at", "kind", "value", "unit", "text"]
            extra_kwargs = {"id": {"read_only": False}}
            list_serializer_class = BulkObservationSerializer

    class NaivePushView(APIView):
        max_body_bytes = 10 * 1024 * 1024

        def post(self, request: Any) -> Response:
            serializer = ObservationSerializer(data=request.data["rows"], many=True)
            serializer.is_valid(raise_exception=True)
            serializer.save(recorded_by=request.user, created_by=request.user)
            return Response({"created": len(serializer.validated_data)}, status=status.HTTP_200_OK)

    return NaivePushView


def _urlpatterns() -> list[Any]:
    from django.urls import path

    from settings.urls import urlpatterns as tenant_urlpatterns

    return [path("bench/naive/push/", _naive_view().as_view()), *tenant_urlpatterns]


__getattr__ = lazy_urlconf(__name__, _urlpatterns)


# --- data ----------------------------------------------------------------------------------------


def seed() -> str:
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from farms.models import Crop, Farm, Field, Planting

    # Mixed: a farm tenant's host serves settings.urls_farm (issue 19, item 6), which has none
    # of the benchmark's own naive route (ROOT_URLCONF of bench_settings).
    tenant = unthrottled_tenant_provision(
        slug=SLUG, name="Bench farm", kind="mixed", password=PASSWORD
    )
    with tenant_context(tenant):
        admin = User.objects.get(email=f"admin@{SLUG}.test")
        farm = Farm.objects.create(name="Bench farm")
        boundary = {
            "type": "Polygon",
            "coordinates": [
                [[36.0, -0.3], [36.01, -0.3], [36.01, -0.29], [36.0, -0.29], [36.0, -0.3]]
            ],
        }
        Field.objects.create(
            id=FIELD_ID,
            farm=farm,
            name="Block",
            boundary=boundary,
            area_ha=1.0,
            bbox_min_lon=36.0,
            bbox_min_lat=-0.3,
            bbox_max_lon=36.01,
            bbox_max_lat=-0.29,
            created_by=admin,
        )
        crop = Crop.objects.create(name="Maize")
        Planting.objects.create(
            id=PLANTING_ID,
            field_id=FIELD_ID,
            crop=crop,
            season="2026",
            planted_on=datetime(2026, 3, 1, tzinfo=UTC).date(),
            status="growing",
        )
    return str(tenant.schema_name)


def rows(count: int) -> list[dict[str, Any]]:
    from apikit.ids import new_id

    now = datetime.now(UTC)
    return [
        {
            "id": str(new_id()),
            "field_id": str(FIELD_ID),
            "planting_id": str(PLANTING_ID),
            "observed_at": (now - timedelta(minutes=i)).isoformat(),
            "kind": "rainfall",
            "value": float(i % 50),
            "unit": "mm",
            "text": f"reading {i}",
        }
        for i in range(count)
    ]


def verdant_body(batch: list[dict[str, Any]]) -> bytes:
    changes = [
        {
            "op": "upsert",
            "id": row["id"],
            "base_version": None,
            "fields": {k: v for k, v in row.items() if k != "id"},
        }
        for row in batch
    ]
    return json.dumps({"changes": {"observations": changes}}).encode()


def naive_body(batch: list[dict[str, Any]]) -> bytes:
    renamed = [
        {
            **{k: v for k, v in row.items() if k not in ("field_id", "planting_id")},
            "field": row["field_id"],
            "planting": row["planting_id"],
        }
        for row in batch
    ]
    return json.dumps({"rows": renamed}).encode()


def copy_floor(schema: str, body: bytes, user_id: str) -> float:
    """The floor: decode the same JSON and COPY the rows into the table, then commit."""
    import psycopg

    url = os.environ["DATABASE_URL"]
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        data = json.loads(body)["changes"]["observations"]
        with conn.cursor() as cursor:
            cursor.execute(f'SET search_path = "{schema}", public')
            columns = (
                "id, field_id, planting_id, observed_at, kind, value, unit, text, device_id, "
                "version, created_at, updated_at, recorded_by_id, created_by_id, updated_by_id"
            )
            now = datetime.now(UTC)
            with cursor.copy(f"COPY farms_observation ({columns}) FROM STDIN") as copy:
                for change in data:
                    f = change["fields"]
                    copy.write_row(
                        (
                            change["id"],
                            f["field_id"],
                            f["planting_id"],
                            f["observed_at"],
                            f["kind"],
                            f["value"],
                            f["unit"],
                            f["text"],
                            "",
                            1,
                            now,
                            now,
                            user_id,
                            user_id,
                            user_id,
                        )
                    )
        conn.commit()
        return time.perf_counter() - started


# --- HTTP ----------------------------------------------------------------------------------------


def post(
    port: int, host: str, path: str, body: bytes, token: str | None
) -> tuple[int, bytes, float]:
    headers = {
        "Host": host,
        "Content-Type": "application/json",
        "Idempotency-Key": str(uuid.uuid4()),
    }
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        started = time.perf_counter()
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        content = response.read()
        return response.status, content, time.perf_counter() - started
    finally:
        connection.close()


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="sync_push")
    samples: dict[str, list[float]] = {"verdant": [], "naive": [], "floor": []}
    with bench_database("sync_push"):
        os.environ.setdefault("DEBUG", "false")
        django_setup("settings.dev")
        from accounts.models import User
        from tenants.services import template_schema_ensure, tenant_host

        say("migrating and provisioning the bench tenant (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        schema = seed()
        host = tenant_host(SLUG)
        from django_tenants.utils import schema_context

        with schema_context(schema):
            user_id = str(User.objects.get(email=f"admin@{SLUG}.test").pk)
        from django.db import connections

        connections.close_all()
        port = free_port()
        with gunicorn(
            app="tests.benchmarks.bench_sync_push:application",
            port=port,
            log=output.with_suffix(".gunicorn.log"),
            workers=1,
        ) as server:
            status, content, _ = post(
                port,
                host,
                "/api/v1/auth/token/",
                json.dumps({"email": f"admin@{SLUG}.test", "password": PASSWORD}).encode(),
                None,
            )
            token = json.loads(content)["access"]
            # Warm up both endpoints (imports, caches) with a small batch.
            for path, make in (
                ("/api/v1/sync/push/", verdant_body),
                ("/bench/naive/push/", naive_body),
            ):
                status, content, _ = post(port, host, path, make(rows(20)), token)
                if status != 200:
                    raise RuntimeError(f"{path}: HTTP {status} on warm-up: {content[:300]!r}")
            sampler = RssSampler(pid=server.pid, interval=0.02)
            sampler.sample()
            baseline = sampler.peak.single_rss_bytes
            with sampler:
                for round_index in range(ROUNDS):
                    body = verdant_body(rows(ROWS))
                    status, content, elapsed = post(port, host, "/api/v1/sync/push/", body, token)
                    summary = json.loads(content).get("summary")
                    if status != 200 or summary["applied"] != ROWS:
                        raise RuntimeError(f"push: HTTP {status}: {content[:300]!r}")
                    samples["verdant"].append(elapsed)
                    say(f"round {round_index + 1}/{ROUNDS} verdant push: {elapsed * 1000:.0f} ms")
            push_peak = sampler.peak.single_rss_bytes
            for round_index in range(ROUNDS):
                status, content, elapsed = post(
                    port, host, "/bench/naive/push/", naive_body(rows(ROWS)), token
                )
                if status != 200:
                    raise RuntimeError(f"naive: HTTP {status}: {content[:300]!r}")
                samples["naive"].append(elapsed)
                say(f"round {round_index + 1}/{ROUNDS} naive: {elapsed * 1000:.0f} ms")
        for round_index in range(ROUNDS):
            elapsed = copy_floor(schema, verdant_body(rows(ROWS)), user_id)
            samples["floor"].append(elapsed)
            say(f"round {round_index + 1}/{ROUNDS} floor COPY: {elapsed * 1000:.0f} ms")

    p50 = {name: summarize(values).p50 for name, values in samples.items()}
    for name, values in samples.items():
        stats = summarize(values)
        result.add(f"{name}: p50 for {ROWS} rows", stats.p50 * 1000, "ms")
        result.add(f"{name}: p95 for {ROWS} rows", stats.p95 * 1000, "ms")
    speedup = p50["naive"] / p50["verdant"]
    versus_floor = p50["verdant"] / p50["floor"]
    growth = mib(push_peak - baseline)
    result.add(
        "naive / push time",
        speedup,
        "x",
        target=f">= {SPEEDUP_TARGET:.0f}x",
        status=pass_fail(speedup >= SPEEDUP_TARGET),
    )
    result.add(
        "push / floor time",
        versus_floor,
        "x",
        target=f"<= {FLOOR_TARGET:.0f}x",
        status=pass_fail(versus_floor <= FLOOR_TARGET),
    )
    result.add(
        "worker RSS growth during pushes",
        growth,
        "MiB",
        target=f"<= {MEMORY_TARGET_MIB:.0f} MiB",
        status=pass_fail(growth <= MEMORY_TARGET_MIB),
    )
    result.details = {
        "rows": ROWS,
        "rounds": ROUNDS,
        "gunicorn_workers": 1,
        "worker_rss_baseline_mib": mib(baseline),
        "worker_rss_peak_mib": mib(push_peak),
        "samples_seconds": samples,
    }
    result.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
