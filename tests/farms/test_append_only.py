"""Observations and harvests are append-only: nobody edits them in place; a field agent cannot
archive them either; a correction is a new row with ``supersedes``."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import tenant_context

from farms.models import Harvest, Observation
from tests.farms.conftest import HARVEST1, OBS1, PLANTING1, FarmWorld, error, ids

ROWS = [("observations", OBS1), ("harvests", HARVEST1)]


@pytest.mark.parametrize(("resource", "pk"), ROWS)
def test_field_agent_cannot_change_or_archive(
    farm_alpha: FarmWorld, resource: str, pk: Any
) -> None:
    client = farm_alpha.agent_client()
    url = f"/api/v1/farms/{resource}/{pk}/"
    assert error(client.patch(url, {"text": "edited"}, format="json"), 403)["code"] == (
        "permission_denied"
    )
    error(client.put(url, {"text": "edited"}, format="json"), 403)
    error(client.delete(url), 403)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize(("resource", "pk"), ROWS)
def test_nobody_edits_in_place(farm_alpha: FarmWorld, resource: str, pk: Any) -> None:
    for client in (farm_alpha.admin_client(), farm_alpha.agronomist_client()):
        response = client.patch(f"/api/v1/farms/{resource}/{pk}/", {"grade": "B"}, format="json")
        assert error(response, 405)["code"] == "method_not_allowed"


@pytest.mark.parametrize(("resource", "pk"), ROWS)
def test_managers_may_archive_bad_rows(farm_alpha: FarmWorld, resource: str, pk: Any) -> None:
    client = farm_alpha.agronomist_client()
    assert client.delete(f"/api/v1/farms/{resource}/{pk}/").status_code == 204
    error(client.get(f"/api/v1/farms/{resource}/{pk}/"), 404)
    model = Observation if resource == "observations" else Harvest
    with tenant_context(farm_alpha.world.tenant):
        assert model.all_objects.get(pk=pk).archived_at is not None  # kept, only hidden


def test_agronomist_with_view_only_cannot_archive(farm_alpha: FarmWorld) -> None:
    from apikit.policy import AccessLevel, container_access_revoke

    with tenant_context(farm_alpha.world.tenant):
        container_access_revoke(
            user=farm_alpha.agronomist, container=farm_alpha.f1, level=AccessLevel.MANAGE
        )
    response = farm_alpha.agronomist_client().delete(f"/api/v1/farms/observations/{OBS1}/")
    assert error(response, 403)["code"] == "permission_denied"


def test_a_correction_supersedes_the_original(farm_alpha: FarmWorld) -> None:
    client = farm_alpha.agent_client()
    correction = client.post(
        "/api/v1/farms/observations/",
        {
            "planting": str(PLANTING1),
            "observed_at": "2026-04-01T06:00:00Z",
            "kind": "rainfall",
            "value": 21.5,
            "unit": "mm",
            "supersedes": str(OBS1),
        },
        format="json",
    )
    assert correction.status_code == 201, correction.content
    assert correction.json()["supersedes"] == str(OBS1)
    original = client.get(f"/api/v1/farms/observations/{OBS1}/").json()
    assert original["is_superseded"] is True
    assert original["value"] == 12.5  # untouched
    current = ids(client.get(f"/api/v1/farms/observations/?current=true&planting={PLANTING1}"))
    assert current == [correction.json()["id"]]
    superseded = ids(client.get("/api/v1/farms/observations/?current=false"))
    assert superseded == [str(OBS1)]

    again = client.post(
        "/api/v1/farms/observations/",
        {
            "planting": str(PLANTING1),
            "observed_at": "2026-04-01T06:00:00Z",
            "kind": "rainfall",
            "value": 22,
            "unit": "mm",
            "supersedes": str(OBS1),
        },
        format="json",
    )
    assert error(again, 409)["code"] == "already_superseded"


def test_a_harvest_correction_must_stay_on_its_planting(farm_alpha: FarmWorld) -> None:
    client = farm_alpha.agent_client()
    correction = client.post(
        "/api/v1/farms/harvests/",
        {
            "planting": str(PLANTING1),
            "harvested_on": "2026-04-01",
            "quantity_kg": "6",
            "supersedes": str(HARVEST1),
        },
        format="json",
    )
    assert correction.status_code == 201, correction.content
    assert client.get(f"/api/v1/farms/harvests/{HARVEST1}/").json()["is_superseded"] is True
    duplicate = client.post(
        "/api/v1/farms/harvests/",
        {
            "planting": str(PLANTING1),
            "harvested_on": "2026-04-01",
            "quantity_kg": "7",
            "supersedes": str(HARVEST1),
        },
        format="json",
    )
    assert error(duplicate, 409)["code"] == "already_superseded"


def test_archiving_a_correction_lets_the_row_be_corrected_again(farm_alpha: FarmWorld) -> None:
    payload = {
        "planting": str(PLANTING1),
        "harvested_on": "2026-04-01",
        "quantity_kg": "6",
        "supersedes": str(HARVEST1),
    }
    agent = farm_alpha.agent_client()
    first = agent.post("/api/v1/farms/harvests/", payload, format="json").json()["id"]
    assert (
        farm_alpha.agronomist_client().delete(f"/api/v1/farms/harvests/{first}/").status_code == 204
    )
    assert agent.get(f"/api/v1/farms/harvests/{HARVEST1}/").json()["is_superseded"] is False
    assert agent.post("/api/v1/farms/harvests/", payload, format="json").status_code == 201


def test_corrections_across_fields_are_refused(farm_alpha: FarmWorld) -> None:
    from tests.farms.conftest import OBS2

    response = farm_alpha.admin_client().post(
        "/api/v1/farms/observations/",
        {
            "planting": str(PLANTING1),
            "observed_at": "2026-04-01T06:00:00Z",
            "kind": "note",
            "text": "moved",
            "supersedes": str(OBS2),
        },
        format="json",
    )
    assert list(error(response, 400)["fields"]) == ["supersedes"]
