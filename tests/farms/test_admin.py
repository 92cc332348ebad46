"""The farm models in each tenant's Django admin: pages render, rows are the tenant's own,
observations and harvests are read-only, and Farm has guardian's object-permission admin."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.conftest import ADMIN_EMAIL
from tests.farms.conftest import F1, OBS1, FarmWorld


def _admin(world: FarmWorld) -> Client:
    client = Client(HTTP_HOST=world.world.host)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": ADMIN_EMAIL, "password": world.world.password}
    )
    assert response.status_code == 302
    return client


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/admin/farms/farm/", b"alpha west farm"),
        ("/admin/farms/field/", b"alpha maize block"),
        ("/admin/farms/crop/", b"H614"),
        ("/admin/farms/planting/", b"2026 long rains"),
        ("/admin/farms/observation/", b"Rainfall"),
        ("/admin/farms/harvest/", b"5.000"),
        ("/admin/farms/observation/?kind=rainfall&q=west", b"Rainfall"),
        (f"/admin/farms/farm/{F1}/permissions/", b"Object permissions"),
    ],
)
def test_admin_pages_show_this_tenants_rows(
    farm_alpha: FarmWorld, farm_beta: FarmWorld, path: str, text: bytes
) -> None:
    page = _admin(farm_alpha).get(path)
    assert page.status_code == 200, page.content[:300]
    assert text in page.content
    assert b"beta west farm" not in page.content


def test_observations_cannot_be_edited_in_the_admin(farm_alpha: FarmWorld) -> None:
    client = _admin(farm_alpha)
    page = client.get(f"/admin/farms/observation/{OBS1}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content
    assert client.get("/admin/farms/observation/add/").status_code == 403
