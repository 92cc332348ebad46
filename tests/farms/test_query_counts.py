"""Every list endpoint (and both streams) issues the same number of queries for 1 and 50 rows."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from farms import services
from farms.models import Crop, Farm, Harvest, Observation, Planting
from tests.farms.conftest import FarmWorld, square, streamed
from tests.query_budget import assert_constant_queries

_counter = itertools.count()


def _new_farm(world: FarmWorld) -> Farm:
    from apikit.policy import AccessLevel, container_access_grant

    farm = Farm.objects.create(name=f"qcfarm {next(_counter)}")
    container_access_grant(user=world.agent, container=farm, level=AccessLevel.VIEW)
    return farm


def _adders(world: FarmWorld) -> dict[str, Callable[[], None]]:
    def farm() -> None:
        _new_farm(world)

    def field() -> None:
        n = next(_counter)
        services.field_create(
            farm=_new_farm(world),
            name=f"qcfield{n}",
            boundary=square(36 + n * 0.001, 0.0, 0.0005),
            actor=None,
        )

    def crop() -> None:
        Crop.objects.create(name=f"qccrop {next(_counter)}")

    def planting() -> None:
        Planting.objects.create(
            field=world.field1,
            crop=world.crop,
            season=f"qcseason{next(_counter)}",
            planted_on=dt.date(2026, 1, 1),
        )

    def observation() -> None:
        Observation.objects.create(
            field=world.field1,
            planting=world.planting1,
            observed_at=timezone.now(),
            kind="note",
            text=f"qcnote{next(_counter)}",
            recorded_by=world.agent,
        )

    def harvest() -> None:
        Harvest.objects.create(
            planting=world.planting1, harvested_on=dt.date(2026, 4, 2), quantity_kg=Decimal(1)
        )

    return {
        "farm": farm,
        "field": field,
        "crop": crop,
        "planting": planting,
        "observation": observation,
        "harvest": harvest,
    }


def _results(response: Any) -> int:
    return len(response.json()["results"])


def _stream_rows(marker: bytes) -> Callable[[Any], int]:
    def count(body: Any) -> int:
        return int(body.count(marker))

    return count


CASES = [
    # (url whose filter matches only the rows the test adds, which rows to add)
    ("/api/v1/farms/?search=qcfarm", "farm"),
    ("/api/v1/farms/fields/?search=qcfield", "field"),
    ("/api/v1/farms/crops/?search=qccrop", "crop"),
    ("/api/v1/farms/plantings/?search=qcseason", "planting"),
    ("/api/v1/farms/observations/?search=qcnote", "observation"),
    ("/api/v1/farms/harvests/?harvested_after=2026-04-02", "harvest"),
]


@pytest.mark.parametrize(
    ("url", "kind", "who"),
    [(url, kind, who) for url, kind in CASES for who in ("admin", "agent") if kind != "crop"]
    # The crop catalogue is not farm-scoped: one case is enough.
    + [(url, kind, "admin") for url, kind in CASES if kind == "crop"],
)
def test_lists_use_a_constant_number_of_queries(
    farm_alpha: FarmWorld, url: str, kind: str, who: str
) -> None:
    client = farm_alpha.admin_client() if who == "admin" else farm_alpha.agent_client()
    adder = _adders(farm_alpha)[kind]

    def add_rows(n: int) -> None:
        with tenant_context(farm_alpha.world.tenant):
            for _ in range(n):
                adder()

    def fetch() -> Any:
        response = client.get(url + ("&" if "?" in url else "?") + "page_size=100")
        assert response.status_code == 200, response.content
        return response

    assert_constant_queries(fetch=fetch, add_rows=add_rows, expected_rows=_results)


@pytest.mark.parametrize(
    ("url", "kind", "marker"),
    [
        ("/api/v1/farms/fields/geojson/?search=qcfield", "field", b'"type":"Feature"'),
        ("/api/v1/farms/observations/export/?search=qcnote", "observation", b",note,"),
    ],
)
def test_streams_use_a_constant_number_of_queries(
    farm_alpha: FarmWorld, url: str, kind: str, marker: bytes
) -> None:
    client = farm_alpha.agent_client()
    adder = _adders(farm_alpha)[kind]

    def add_rows(n: int) -> None:
        with tenant_context(farm_alpha.world.tenant):
            for _ in range(n):
                adder()

    def fetch() -> bytes:
        return streamed(client.get(url))

    assert_constant_queries(fetch=fetch, add_rows=add_rows, expected_rows=_stream_rows(marker))
