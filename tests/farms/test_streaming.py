"""fields/geojson/ and observations/export/: streamed in the request's tenant, with flat memory."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import tracemalloc
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from farms import exports
from farms.models import Observation
from tests.farms.conftest import FIELD1, FIELD2, OBS1, OBS2, FarmWorld, square, streamed


def test_streams_stay_in_the_request_tenant(farm_alpha: FarmWorld, farm_beta: FarmWorld) -> None:
    """The body is produced after the view returned; even if the connection was switched to
    another tenant by then, the rows are the requesting tenant's."""
    geojson = farm_alpha.admin_client().get("/api/v1/farms/fields/geojson/")
    export = farm_alpha.admin_client().get("/api/v1/farms/observations/export/")
    with tenant_context(farm_beta.world.tenant):
        features = json.loads(streamed(geojson))["features"]
        rows = list(csv.DictReader(io.StringIO(streamed(export).decode())))
    assert {f["properties"]["name"] for f in features} == {"alpha maize block", "alpha bean block"}
    assert {row["text"] for row in rows} == {"alpha west rain", "alpha east rain"}


def test_geojson_is_a_valid_feature_collection(farm_alpha: FarmWorld) -> None:
    response = farm_alpha.admin_client().get("/api/v1/farms/fields/geojson/")
    assert response["Content-Type"] == "application/geo+json"
    body = json.loads(streamed(response))
    by_id = {feature["id"]: feature for feature in body["features"]}
    assert set(by_id) == {str(FIELD1), str(FIELD2)}
    feature = by_id[str(FIELD1)]
    assert feature["type"] == "Feature"
    assert feature["geometry"] == square(36.05, -0.35)
    assert feature["properties"]["farm"] == str(farm_alpha.f1.pk)
    assert feature["properties"]["area_ha"] == pytest.approx(123.1, abs=0.2)


def test_csv_export_columns_units_and_audit(farm_alpha: FarmWorld) -> None:
    with tenant_context(farm_alpha.world.tenant):
        Observation.objects.create(
            field=farm_alpha.field1,
            observed_at=timezone.now(),
            kind="note",
            text='=HYPERLINK("http://evil.example")',
        )
    response = farm_alpha.admin_client().get("/api/v1/farms/observations/export/?kind=note")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="observations.csv"'
    rows = list(csv.DictReader(io.StringIO(streamed(response).decode())))
    assert list(rows[0]) == exports.OBSERVATION_CSV_COLUMNS
    # Spreadsheet formulas are neutralised.
    assert rows[0]["text"] == '\'=HYPERLINK("http://evil.example")'
    everything = farm_alpha.admin_client().get("/api/v1/farms/observations/export/?kind=rainfall")
    rows = list(csv.DictReader(io.StringIO(streamed(everything).decode())))
    assert {(row["id"], row["value"], row["unit"]) for row in rows} == {
        (str(OBS1), "12.5", "mm"),
        (str(OBS2), "3.0", "mm"),
    }
    assert rows[0]["observed_at"].endswith("Z")
    with tenant_context(farm_alpha.world.tenant):
        assert (
            AuditEvent.objects.filter(
                action=AuditEvent.Action.EXPORT, object_type="farms.observation"
            ).count()
            == 2
        )


def _add_observations(world: FarmWorld, n: int) -> None:
    base = timezone.now() - dt.timedelta(days=30)
    with tenant_context(world.world.tenant):
        Observation.objects.bulk_create(
            (
                Observation(
                    field=world.field1,
                    planting=world.planting1,
                    observed_at=base + dt.timedelta(seconds=i),
                    kind="soil_moisture",
                    value=0.25,
                    unit="m3/m3",
                    text="routine probe reading",
                    device_id="probe-1",
                )
                for i in range(n)
            ),
            batch_size=2000,
        )


def _peak_while_streaming(response: Any) -> tuple[int, int, int]:
    """(peak traced bytes, body bytes, chunk count) while consuming the stream chunk by chunk."""
    tracemalloc.start()
    try:
        size = chunks = 0
        for chunk in response.streaming_content:
            size += len(chunk)
            chunks += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, size, chunks


def test_export_memory_does_not_grow_with_the_row_count(
    farm_alpha: FarmWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small chunks so that a few thousand rows already span many chunks.
    monkeypatch.setattr(exports, "CHUNK_ROWS", 200)
    client = farm_alpha.admin_client()
    _add_observations(farm_alpha, 1500)
    small_peak, small_size, _ = _peak_while_streaming(
        client.get("/api/v1/farms/observations/export/")
    )
    _add_observations(farm_alpha, 4500)
    large_peak, large_size, chunks = _peak_while_streaming(
        client.get("/api/v1/farms/observations/export/")
    )
    assert large_size > 3.5 * small_size
    assert chunks > 5  # really streamed in pieces, not one body
    assert large_peak < 1.5 * small_peak, (small_peak, large_peak)
    # Buffering the whole body would need at least its size; streaming stays well under it.
    assert large_peak < 0.75 * large_size, (large_peak, large_size)
