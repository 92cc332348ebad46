"""Every domain rule answers 400 with the offending field named (never a 500)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from farms.models import Field, Planting
from tests.farms.conftest import F1, FIELD1, FIELD2, PLANTING1, FarmWorld, error, square


def _fields(response: Any) -> dict[str, Any]:
    body = error(response, 400)
    assert body["code"] == "validation_error"
    fields: dict[str, Any] = body["fields"]
    return fields


def _circle(n: int) -> list[list[float]]:
    points = [
        [
            36.0 + round(math.cos(2 * math.pi * i / n) * 0.01, 9),
            round(math.sin(2 * math.pi * i / n) * 0.01, 9),
        ]
        for i in range(n)
    ]
    return [*points, points[0]]


@pytest.mark.parametrize(
    ("boundary", "needle"),
    [
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}, "itself"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]}, "not closed"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [1, 1], [0, 0]]]}, "Longitude"),
        ({"type": "LineString", "coordinates": [[0, 0], [1, 1]]}, "Polygon or MultiPolygon"),
        ({"type": "Polygon", "coordinates": [_circle(5001)]}, "more than 5000 vertices"),
        ("not json geometry", "GeoJSON geometry object"),
    ],
)
def test_field_boundary_rules(farm_alpha: FarmWorld, boundary: Any, needle: str) -> None:
    response = farm_alpha.admin_client().post(
        "/api/v1/farms/fields/",
        {"farm": str(F1), "name": "bad", "boundary": boundary},
        format="json",
    )
    fields = _fields(response)
    assert list(fields) == ["boundary"]
    assert needle in fields["boundary"][0]


def test_field_is_created_with_server_computed_area(farm_alpha: FarmWorld) -> None:
    response = farm_alpha.agronomist_client().post(
        "/api/v1/farms/fields/",
        {"farm": str(F1), "name": "north", "boundary": square(36.05, -0.30), "area_ha": 1},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["area_ha"] == pytest.approx(123.1, abs=0.2)
    assert body["bbox"] == pytest.approx([36.05, -0.30, 36.06, -0.29])
    assert body["farm"] == {"id": str(F1), "name": "alpha west farm"}


def test_patching_a_boundary_recomputes_area_and_bbox(farm_alpha: FarmWorld) -> None:
    client = farm_alpha.agronomist_client()
    response = client.patch(
        f"/api/v1/farms/fields/{FIELD1}/",
        {"boundary": square(36.0, -0.35, 0.02)},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["area_ha"] == pytest.approx(4 * 123.1, rel=0.01)
    with tenant_context(farm_alpha.world.tenant):
        field = Field.objects.get(pk=FIELD1)
        assert (field.bbox_min_lon, field.bbox_max_lon) == pytest.approx((36.0, 36.02))
    bad = client.patch(
        f"/api/v1/farms/fields/{FIELD1}/",
        {"boundary": {"type": "Polygon", "coordinates": []}},
        format="json",
    )
    assert "boundary" in _fields(bad)


def test_planting_dates_must_be_ordered(farm_alpha: FarmWorld) -> None:
    client = farm_alpha.agronomist_client()
    payload = {
        "field": str(FIELD1),
        "crop": str(farm_alpha.crop.pk),
        "season": "2026 short rains",
        "planted_on": "2026-10-10",
        "expected_harvest_on": "2026-10-01",
    }
    assert list(_fields(client.post("/api/v1/farms/plantings/", payload, format="json"))) == [
        "expected_harvest_on"
    ]
    patched = client.patch(
        f"/api/v1/farms/plantings/{PLANTING1}/", {"planted_on": "2026-12-01"}, format="json"
    )
    assert list(_fields(patched)) == ["expected_harvest_on"]
    payload["expected_harvest_on"] = "2027-01-15"
    created = client.post("/api/v1/farms/plantings/", payload, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["crop"]["name"] == "Maize"


def test_planting_needs_a_known_crop_and_a_managed_field(farm_alpha: FarmWorld) -> None:
    client = farm_alpha.agronomist_client()
    base = {"season": "s", "planted_on": "2026-10-10"}
    unknown_crop = {**base, "field": str(FIELD1), "crop": str(FIELD1)}
    assert list(_fields(client.post("/api/v1/farms/plantings/", unknown_crop, format="json"))) == [
        "crop"
    ]
    other_farm = {**base, "field": str(FIELD2), "crop": str(farm_alpha.crop.pk)}
    assert list(_fields(client.post("/api/v1/farms/plantings/", other_farm, format="json"))) == [
        "field"
    ]
    bad_status = {**base, "field": str(FIELD1), "crop": str(farm_alpha.crop.pk), "status": "x"}
    assert list(_fields(client.post("/api/v1/farms/plantings/", bad_status, format="json"))) == [
        "status"
    ]


def _observation(**overrides: Any) -> dict[str, Any]:
    payload = {
        "field": str(FIELD1),
        "planting": str(PLANTING1),
        "observed_at": "2026-04-01T06:00:00Z",
        "kind": "soil_moisture",
        "value": 31,
        "unit": "%",
        "device_id": "probe-7",
    }
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not None}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"value": 140}, "value"),
        ({"kind": "temperature", "value": 95, "unit": "degC"}, "value"),
        ({"kind": "rainfall", "value": -2, "unit": "mm"}, "value"),
        ({"unit": "gallons"}, "unit"),
        ({"unit": ""}, "unit"),
        ({"kind": "frost"}, "kind"),
        ({"kind": "note", "value": None, "unit": None}, "text"),
        ({"value": "NaN"}, "value"),
        ({"observed_at": "yesterday"}, "observed_at"),
        ({"field": str(FIELD2)}, "field"),
        ({"field": None, "planting": None}, "field"),
        ({"supersedes": str(FIELD1)}, "supersedes"),
    ],
)
def test_observation_rules(farm_alpha: FarmWorld, overrides: dict[str, Any], field: str) -> None:
    response = farm_alpha.agent_client().post(
        "/api/v1/farms/observations/", _observation(**overrides), format="json"
    )
    assert field in _fields(response)


def test_observation_time_cannot_be_in_the_future(farm_alpha: FarmWorld) -> None:
    later = (timezone.now() + dt.timedelta(hours=1)).isoformat()
    response = farm_alpha.agent_client().post(
        "/api/v1/farms/observations/", _observation(observed_at=later), format="json"
    )
    assert list(_fields(response)) == ["observed_at"]


def test_planting_must_be_on_the_observed_field(farm_alpha: FarmWorld) -> None:
    with tenant_context(farm_alpha.world.tenant):
        other = Field.objects.create(
            farm=farm_alpha.f1,
            name="other",
            boundary=square(36.07, -0.35),
            area_ha=1,
            bbox_min_lon=36.07,
            bbox_min_lat=-0.35,
            bbox_max_lon=36.08,
            bbox_max_lat=-0.34,
        )
    response = farm_alpha.agent_client().post(
        "/api/v1/farms/observations/", _observation(field=str(other.pk)), format="json"
    )
    assert list(_fields(response)) == ["planting"]


def test_observation_values_are_stored_canonically(farm_alpha: FarmWorld) -> None:
    response = farm_alpha.agent_client().post(
        "/api/v1/farms/observations/",
        _observation(kind="temperature", value=68, unit="degF", field=None),
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["value"], body["unit"], body["field"]) == (
        pytest.approx(20.0),
        "degC",
        str(FIELD1),
    )
    assert body["recorded_by"] == str(farm_alpha.agent.pk)


def _harvest(**overrides: Any) -> dict[str, Any]:
    payload = {"planting": str(PLANTING1), "harvested_on": "2026-04-10", "quantity_kg": "120.5"}
    payload.update(overrides)
    return {key: value for key, value in payload.items() if value is not None}


@pytest.mark.parametrize("planting_status", [Planting.Status.PLANNED, Planting.Status.FAILED])
def test_harvest_only_for_growing_or_harvested_plantings(
    farm_alpha: FarmWorld, planting_status: str
) -> None:
    with tenant_context(farm_alpha.world.tenant):
        Planting.objects.filter(pk=PLANTING1).update(status=planting_status)
    response = farm_alpha.agent_client().post("/api/v1/farms/harvests/", _harvest(), format="json")
    fields = _fields(response)
    assert list(fields) == ["planting"]
    assert planting_status in fields["planting"][0]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"harvested_on": "2026-01-01"}, "harvested_on"),
        ({"harvested_on": "2999-01-01"}, "harvested_on"),
        ({"quantity_kg": "-1"}, "quantity_kg"),
        ({"quantity_kg": None}, "quantity_kg"),
        ({"quantity_kg": None, "quantity": "2", "unit": "bushel"}, "unit"),
        ({"quantity": "2", "unit": "t"}, "quantity_kg"),
        ({"planting": "not-a-uuid"}, "planting"),
    ],
)
def test_harvest_rules(farm_alpha: FarmWorld, overrides: dict[str, Any], field: str) -> None:
    response = farm_alpha.agent_client().post(
        "/api/v1/farms/harvests/", _harvest(**overrides), format="json"
    )
    assert field in _fields(response)


def test_harvest_units_convert_to_kilograms(farm_alpha: FarmWorld) -> None:
    response = farm_alpha.agent_client().post(
        "/api/v1/farms/harvests/",
        _harvest(quantity_kg=None, quantity="1.25", unit="t", grade="A"),
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["quantity_kg"] == "1250.000"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "timezone": "Mars/Olympus"}, "timezone"),
        ({"name": "x", "location": {"type": "Point", "coordinates": [200, 0]}}, "location"),
        ({"name": "x", "location": {"type": "Polygon", "coordinates": []}}, "location"),
        ({"name": ""}, "name"),
    ],
)
def test_farm_rules(farm_alpha: FarmWorld, payload: dict[str, Any], field: str) -> None:
    response = farm_alpha.admin_client().post("/api/v1/farms/", payload, format="json")
    assert list(_fields(response)) == [field]


@pytest.mark.parametrize(
    ("url", "param"),
    [
        ("/api/v1/farms/fields/?bbox=1,2,3", "bbox"),
        ("/api/v1/farms/fields/?bbox=a,b,c,d", "bbox"),
        ("/api/v1/farms/fields/?bbox=10,0,5,1", "bbox"),
        ("/api/v1/farms/fields/?bbox=0,-95,1,1", "bbox"),
        ("/api/v1/farms/fields/geojson/?bbox=nope", "bbox"),
        ("/api/v1/farms/fields/?farm=nope", "farm"),
        ("/api/v1/farms/plantings/?status=ripe", "status"),
        ("/api/v1/farms/observations/?kind=frost", "kind"),
        ("/api/v1/farms/observations/?observed_after=soon", "observed_after"),
        ("/api/v1/farms/observations/?current=maybe", "current"),
        ("/api/v1/farms/observations/export/?kind=frost", "kind"),
        ("/api/v1/farms/harvests/?ordering=grade", "ordering"),
        ("/api/v1/farms/crops/?category=weeds", "category"),
    ],
)
def test_bad_query_parameters_are_400(farm_alpha: FarmWorld, url: str, param: str) -> None:
    assert param in _fields(farm_alpha.admin_client().get(url))


def test_duplicate_crops_are_refused(farm_alpha: FarmWorld) -> None:
    client = farm_alpha.agronomist_client()
    response = client.post(
        "/api/v1/farms/crops/", {"name": "Maize", "variety": "H614"}, format="json"
    )
    assert list(_fields(response)) == ["name"]
    other = client.post(
        "/api/v1/farms/crops/",
        {"name": "Maize", "variety": "DK8031", "category": "cereal"},
        format="json",
    )
    assert other.status_code == 201, other.content
