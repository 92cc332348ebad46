"""A field agent granted farm F1 only sees nothing of F2 anywhere: lists, details, filters,
bbox, GeoJSON and CSV export. Two tenants with the same ids never see each other's rows."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from tests.farms.conftest import (
    CROP,
    EAST_BBOX,
    F1,
    F2,
    FIELD1,
    FIELD2,
    HARVEST1,
    HARVEST2,
    OBS1,
    OBS2,
    PLANTING1,
    PLANTING2,
    WEST_BBOX,
    FarmWorld,
    error,
    ids,
)

LISTS = [
    ("/api/v1/farms/", [F1], [F2]),
    ("/api/v1/farms/fields/", [FIELD1], [FIELD2]),
    ("/api/v1/farms/plantings/", [PLANTING1], [PLANTING2]),
    ("/api/v1/farms/observations/", [OBS1], [OBS2]),
    ("/api/v1/farms/harvests/", [HARVEST1], [HARVEST2]),
]


def _stream(response: Any) -> str:
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content).decode()


@pytest.mark.parametrize(("url", "mine", "theirs"), LISTS)
def test_field_agent_lists_only_the_granted_farm(
    farm_alpha: FarmWorld, url: str, mine: list[Any], theirs: list[Any]
) -> None:
    client = farm_alpha.agent_client()
    assert ids(client.get(url)) == [str(pk) for pk in mine]
    for pk in mine:
        assert client.get(f"{url}{pk}/").status_code == 200
    for pk in theirs:
        error(client.get(f"{url}{pk}/"), 404)


@pytest.mark.parametrize(
    "url",
    [
        f"/api/v1/farms/fields/?farm={F2}",
        f"/api/v1/farms/plantings/?farm={F2}",
        f"/api/v1/farms/plantings/?field={FIELD2}",
        f"/api/v1/farms/observations/?farm={F2}",
        f"/api/v1/farms/observations/?field={FIELD2}",
        f"/api/v1/farms/observations/?planting={PLANTING2}",
        f"/api/v1/farms/harvests/?farm={F2}",
        f"/api/v1/farms/harvests/?planting={PLANTING2}",
        f"/api/v1/farms/fields/?bbox={EAST_BBOX}",
        "/api/v1/farms/?search=east",
    ],
)
def test_filters_on_the_other_farm_reveal_nothing(farm_alpha: FarmWorld, url: str) -> None:
    assert ids(farm_alpha.agent_client().get(url)) == []


def test_the_same_filters_work_for_the_tenant_admin(farm_alpha: FarmWorld) -> None:
    client = farm_alpha.admin_client()
    assert ids(client.get(f"/api/v1/farms/fields/?bbox={EAST_BBOX}")) == [str(FIELD2)]
    assert ids(client.get(f"/api/v1/farms/fields/?bbox={WEST_BBOX}")) == [str(FIELD1)]
    assert ids(client.get(f"/api/v1/farms/observations/?farm={F2}")) == [str(OBS2)]
    assert ids(client.get("/api/v1/farms/?search=east")) == [str(F2)]


@pytest.mark.parametrize(
    "url",
    [
        f"/api/v1/farms/{F2}/summary/",
        f"/api/v1/farms/plantings/{PLANTING2}/summary/",
        f"/api/v1/farms/{F2}/access/",
    ],
)
def test_aggregates_and_access_of_the_other_farm_are_404(farm_alpha: FarmWorld, url: str) -> None:
    error(farm_alpha.agronomist_client().get(url), 404)


def test_writes_on_the_other_farm_are_refused(farm_alpha: FarmWorld) -> None:
    agent = farm_alpha.agent_client()
    refused = agent.post(
        "/api/v1/farms/observations/",
        {"field": str(FIELD2), "observed_at": "2026-04-01T08:00:00Z", "kind": "note", "text": "x"},
        format="json",
    )
    assert error(refused, 400)["fields"] == {
        "field": ["No such field, or you cannot record on it."]
    }
    refused = agent.post(
        "/api/v1/farms/harvests/",
        {"planting": str(PLANTING2), "harvested_on": "2026-04-02", "quantity_kg": "1"},
        format="json",
    )
    assert "planting" in error(refused, 400)["fields"]
    agronomist = farm_alpha.agronomist_client()
    error(agronomist.patch(f"/api/v1/farms/fields/{FIELD2}/", {"name": "x"}, format="json"), 404)
    error(agronomist.delete(f"/api/v1/farms/plantings/{PLANTING2}/"), 404)
    error(agronomist.delete(f"/api/v1/farms/observations/{OBS2}/"), 404)


def test_geojson_holds_only_visible_fields(farm_alpha: FarmWorld) -> None:
    body = json.loads(_stream(farm_alpha.agent_client().get("/api/v1/farms/fields/geojson/")))
    assert body["type"] == "FeatureCollection"
    assert [feature["id"] for feature in body["features"]] == [str(FIELD1)]
    assert body["features"][0]["geometry"]["type"] == "Polygon"
    filtered = farm_alpha.agent_client().get(f"/api/v1/farms/fields/geojson/?bbox={EAST_BBOX}")
    assert json.loads(_stream(filtered))["features"] == []


def test_csv_export_holds_only_visible_observations(farm_alpha: FarmWorld) -> None:
    text = _stream(farm_alpha.agent_client().get("/api/v1/farms/observations/export/"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["id"] for row in rows] == [str(OBS1)]
    assert rows[0]["farm"] == str(F1)
    filtered = farm_alpha.agent_client().get(f"/api/v1/farms/observations/export/?farm={F2}")
    assert list(csv.DictReader(io.StringIO(_stream(filtered)))) == []


def test_agronomist_without_a_grant_sees_nothing(farm_alpha: FarmWorld) -> None:
    from django_tenants.utils import tenant_context

    from apikit.policy import AccessLevel, container_access_revoke

    with tenant_context(farm_alpha.world.tenant):
        for level in AccessLevel:
            container_access_revoke(
                user=farm_alpha.agronomist, container=farm_alpha.f1, level=level
            )
    client = farm_alpha.agronomist_client()
    for url, _mine, _theirs in LISTS:
        assert ids(client.get(url)) == []
    # The crop catalogue is tenant-wide, not farm-scoped.
    assert ids(client.get("/api/v1/farms/crops/")) == [str(CROP)]


def test_tenants_with_colliding_ids_stay_apart(farm_alpha: FarmWorld, farm_beta: FarmWorld) -> None:
    alpha_admin = farm_alpha.admin_client()
    beta_admin = farm_beta.admin_client()
    assert alpha_admin.get(f"/api/v1/farms/{F1}/").json()["name"] == "alpha west farm"
    assert beta_admin.get(f"/api/v1/farms/{F1}/").json()["name"] == "beta west farm"
    texts = {
        row["text"] for row in alpha_admin.get("/api/v1/farms/observations/").json()["results"]
    }
    assert texts == {"alpha west rain", "alpha east rain"}
    features = json.loads(_stream(beta_admin.get("/api/v1/farms/fields/geojson/")))["features"]
    assert {feature["properties"]["name"] for feature in features} == {
        "beta maize block",
        "beta bean block",
    }
    export = _stream(alpha_admin.get("/api/v1/farms/observations/export/"))
    assert "beta" not in export
    # A grant in beta means nothing in alpha: revoke alpha's and the same user id sees nothing.
    from django_tenants.utils import tenant_context

    from apikit.policy import AccessLevel, container_access_revoke

    with tenant_context(farm_alpha.world.tenant):
        container_access_revoke(
            user=farm_alpha.agent, container=farm_alpha.f1, level=AccessLevel.VIEW
        )
    assert ids(farm_alpha.agent_client().get("/api/v1/farms/fields/")) == []
    assert ids(farm_beta.agent_client().get("/api/v1/farms/fields/")) == [str(FIELD1)]


def test_beta_token_is_refused_on_alpha(farm_alpha: FarmWorld, farm_beta: FarmWorld) -> None:
    beta_client = farm_beta.agent_client()
    beta_client.defaults["HTTP_HOST"] = farm_alpha.world.host
    error(beta_client.get("/api/v1/farms/fields/"), 401)
