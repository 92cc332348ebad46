"""plantings/{id}/summary/ and farms/{id}/summary/: right numbers, fixed query counts."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.utils import timezone
from django_tenants.utils import tenant_context

from farms.models import Crop, Harvest, Observation, Planting
from tests.farms.conftest import F1, HARVEST1, OBS1, PLANTING1, FarmWorld
from tests.query_budget import count_queries


def _add_observations(world: FarmWorld, n: int, *, start: int = 0) -> None:
    base = timezone.now() - dt.timedelta(days=1)
    with tenant_context(world.world.tenant):
        Observation.objects.bulk_create(
            Observation(
                field=world.field1,
                planting=world.planting1,
                observed_at=base + dt.timedelta(minutes=start + i),
                kind=("soil_moisture", "temperature")[i % 2],
                value=(0.2 + i / 1000, 20.0 + i / 10)[i % 2],
                unit=("m3/m3", "degC")[i % 2],
            )
            for i in range(n)
        )


def test_planting_summary(farm_alpha: FarmWorld) -> None:
    _add_observations(farm_alpha, 4)
    with tenant_context(farm_alpha.world.tenant):
        # OBS1 (rainfall 12.5) is corrected to 14.0: only the correction counts.
        Observation.objects.create(
            field=farm_alpha.field1,
            planting=farm_alpha.planting1,
            observed_at=timezone.now() - dt.timedelta(hours=1),
            kind="rainfall",
            value=14.0,
            unit="mm",
            supersedes_id=OBS1,
        )
        Harvest.objects.create(
            planting=farm_alpha.planting1,
            harvested_on=dt.date(2026, 4, 2),
            quantity_kg=Decimal("2.5"),
        )
        Harvest.objects.create(
            planting=farm_alpha.planting1,
            harvested_on=dt.date(2026, 4, 1),
            quantity_kg=Decimal(6),
            supersedes_id=HARVEST1,
        )
    body = farm_alpha.agent_client().get(f"/api/v1/farms/plantings/{PLANTING1}/summary/").json()
    assert body["observation_counts"] == {"soil_moisture": 2, "temperature": 2, "rainfall": 1}
    assert body["latest"]["rainfall"]["value"] == 14.0
    assert body["latest"]["temperature"]["value"] == 20.3
    assert body["latest"]["soil_moisture"]["unit"] == "m3/m3"
    assert body["harvest_total_kg"] == "8.500"  # 6 (correction of 5) + 2.5
    assert body["harvest_count"] == 2


def test_planting_summary_query_count_does_not_grow(farm_alpha: FarmWorld) -> None:
    client = farm_alpha.agent_client()
    url = f"/api/v1/farms/plantings/{PLANTING1}/summary/"
    client.get(url)
    _, few = count_queries(lambda: client.get(url))
    _add_observations(farm_alpha, 200)
    _, many = count_queries(lambda: client.get(url))
    assert len(few) == len(many)


def test_farm_summary(farm_alpha: FarmWorld) -> None:
    with tenant_context(farm_alpha.world.tenant):
        beans = Crop.objects.create(name="Beans", variety="Rose coco", category="legume")
        planting = Planting.objects.create(
            field=farm_alpha.field1,
            crop=beans,
            season="2025 short rains",
            planted_on=dt.date(2025, 10, 1),
            status=Planting.Status.HARVESTED,
        )
        Planting.objects.create(
            field=farm_alpha.field1,
            crop=beans,
            season="2026 short rains",
            planted_on=dt.date(2026, 10, 1),
        )
        Harvest.objects.create(
            planting=planting, harvested_on=dt.date(2026, 1, 5), quantity_kg=Decimal(40)
        )
        Harvest.objects.create(
            planting=planting, harvested_on=dt.date(2026, 1, 9), quantity_kg=Decimal(2)
        )
    client = farm_alpha.agronomist_client()
    client.get(f"/api/v1/farms/{F1}/summary/")
    response, queries = count_queries(lambda: client.get(f"/api/v1/farms/{F1}/summary/"))
    body = response.json()
    assert body["farm"] == {"id": str(F1), "name": "alpha west farm"}
    assert body["field_count"] == 1
    assert 123.0 < body["area_ha"] < 123.3
    assert body["plantings_by_status"] == {"planned": 1, "growing": 1, "harvested": 1, "failed": 0}
    assert [
        (row["crop"]["name"], row["season"], row["quantity_kg"]) for row in body["harvests"]
    ] == [
        ("Beans", "2025 short rains", "42.000"),
        ("Maize", "2026 long rains", "5.000"),
    ]
    # Count all but search_path: the authenticated user (read per request, issue 22 item 3),
    # guardian's content type, the scoped farm (grants inlined as a subquery), 3 aggregates.
    statements = [sql for sql in queries if not sql.startswith("SET search_path")]
    assert len(statements) == 6, statements
