"""Demo data for a farm tenant (`make run`'s greenacre): farms, fields with real-looking
boundaries, a crop catalogue, plantings, harvests, a few thousand observations, and grants for
the demo agronomist (manage) and field agent (view, one farm). Idempotent: every row has a
deterministic id, so running it again adds nothing."""

from __future__ import annotations

import datetime as dt
import math
import os
import random
import uuid
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import User
from apikit.policy import AccessLevel, container_access_grant
from farms.geometry import boundary_parse
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from tenants.models import Tenant

_NAMESPACE = uuid.UUID("5d4f8a52-8c1e-4e0b-9a57-6f0f3a8f2b10")

CROPS = [
    ("Maize", "H614", Crop.Category.CEREAL),
    ("Beans", "Rose coco", Crop.Category.LEGUME),
    ("Potato", "Shangi", Crop.Category.ROOT_TUBER),
    ("Wheat", "Kenya Robin", Crop.Category.CEREAL),
    ("Tea", "TRFK 6/8", Crop.Category.BEVERAGE),
    ("Coffee", "SL28", Crop.Category.BEVERAGE),
]
# (name, region, longitude, latitude)
FARMS = [
    ("Highlands Farm", "Nakuru", 36.0712, -0.3031),
    ("Lakeside Farm", "Naivasha", 36.4312, -0.7168),
    ("Ridge Estate", "Kericho", 35.2863, -0.3677),
]
FIELD_NAMES = ["North block", "River block", "Hill block", "South block"]
OBSERVATION_DAYS = 90


def _id(*parts: Any) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, ":".join(str(part) for part in parts))


def _boundary(rng: random.Random, lon: float, lat: float) -> dict[str, Any]:
    """A star-shaped (so never self-intersecting) 7-11-sided plot of roughly 5-20 ha."""
    sides = rng.randint(7, 11)
    radius = rng.uniform(0.0012, 0.0024)
    ring = []
    for i in range(sides):
        angle = 2 * math.pi * i / sides
        r = radius * rng.uniform(0.75, 1.0)
        ring.append([round(lon + r * math.cos(angle), 6), round(lat + r * math.sin(angle), 6)])
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


class Command(BaseCommand):
    help = (
        "Seed demo farm data into a tenant (default: VERDANT_DEMO_FARM or greenacre); idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--tenant", default=os.environ.get("VERDANT_DEMO_FARM", "greenacre"), help="tenant slug"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        slug = options["tenant"]
        tenant = Tenant.objects.filter(slug=slug, is_template=False).first()
        if tenant is None:
            raise CommandError(f"No tenant {slug!r}; provision it first (make run does).")
        with tenant_context(tenant):
            counts = seed(slug=slug, today=timezone.localdate())
        self.stdout.write(
            f"Farm demo data in {slug}: "
            + ", ".join(f"{count} {name}" for name, count in counts.items())
        )


@transaction.atomic
def seed(*, slug: str, today: dt.date) -> dict[str, int]:
    # Demo data, not security: a seeded generator makes every run produce the same rows.
    rng = random.Random(f"{slug}-farm-demo")  # noqa: S311
    admin = User.objects.filter(email=f"admin@{slug}.test").first()
    crops = []
    for name, variety, category in CROPS:
        crop, _ = Crop.all_objects.get_or_create(
            id=_id(slug, "crop", name, variety),
            defaults={"name": name, "variety": variety, "category": category, "created_by": admin},
        )
        crops.append(crop)

    farms, fields, plantings = [], [], []
    harvests: list[Harvest] = []
    for f_index, (farm_name, region, lon, lat) in enumerate(FARMS):
        farm, _ = Farm.all_objects.get_or_create(
            id=_id(slug, "farm", f_index),
            defaults={
                "name": farm_name,
                "region": region,
                "longitude": lon,
                "latitude": lat,
                "timezone": "Africa/Nairobi",
                "created_by": admin,
            },
        )
        farms.append(farm)
        for b_index, block in enumerate(FIELD_NAMES):
            # Blocks on a 2 x 2 grid ~650 m apart, so plots never overlap.
            centre_lon = lon + (b_index % 2) * 0.006
            centre_lat = lat + (b_index // 2) * 0.006
            parsed = boundary_parse(_boundary(rng, centre_lon, centre_lat))
            field, _ = Field.all_objects.get_or_create(
                id=_id(slug, "field", f_index, b_index),
                defaults={
                    "farm": farm,
                    "name": block,
                    "boundary": parsed.geojson,
                    "area_ha": parsed.area_ha,
                    "bbox_min_lon": parsed.min_lon,
                    "bbox_min_lat": parsed.min_lat,
                    "bbox_max_lon": parsed.max_lon,
                    "bbox_max_lat": parsed.max_lat,
                    "created_by": admin,
                },
            )
            fields.append(field)
            crop = crops[(f_index * 2 + b_index) % len(crops)]
            previous, _ = Planting.all_objects.get_or_create(
                id=_id(slug, "planting", f_index, b_index, "previous"),
                defaults={
                    "field": field,
                    "crop": crop,
                    "season": f"{today.year - 1} short rains",
                    "planted_on": today - dt.timedelta(days=300),
                    "expected_harvest_on": today - dt.timedelta(days=180),
                    "status": Planting.Status.HARVESTED,
                    "created_by": admin,
                },
            )
            current, _ = Planting.all_objects.get_or_create(
                id=_id(slug, "planting", f_index, b_index, "current"),
                defaults={
                    "field": field,
                    "crop": crop,
                    "season": f"{today.year} long rains",
                    "planted_on": today - dt.timedelta(days=OBSERVATION_DAYS),
                    "expected_harvest_on": today + dt.timedelta(days=60),
                    "status": Planting.Status.GROWING,
                    "created_by": admin,
                },
            )
            plantings += [previous, current]
            harvests.append(
                Harvest(
                    id=_id(slug, "harvest", previous.pk),
                    planting=previous,
                    harvested_on=previous.planted_on + dt.timedelta(days=125),
                    quantity_kg=Decimal(round(field.area_ha * rng.uniform(1800, 4200), 3)),
                    grade=rng.choice(["A", "A", "B"]),
                    recorded_by=admin,
                    created_by=admin,
                )
            )
    Harvest.all_objects.bulk_create(harvests, ignore_conflicts=True)

    agent = User.objects.filter(email=f"agent@{slug}.test").first()
    observations = _observations(plantings=plantings, today=today, agent=agent)
    Observation.all_objects.bulk_create(observations, batch_size=1000, ignore_conflicts=True)

    agronomist = User.objects.filter(email=f"agronomist@{slug}.test").first()
    if agronomist is not None:
        for farm in farms[:2]:
            container_access_grant(user=agronomist, container=farm, level=AccessLevel.VIEW)
            container_access_grant(user=agronomist, container=farm, level=AccessLevel.MANAGE)
    if agent is not None:
        container_access_grant(user=agent, container=farms[0], level=AccessLevel.VIEW)
    return {
        "farms": Farm.objects.count(),
        "fields": Field.objects.count(),
        "plantings": Planting.objects.count(),
        "observations": Observation.objects.count(),
        "harvests": Harvest.objects.count(),
    }


def _observations(
    *, plantings: list[Planting], today: dt.date, agent: User | None
) -> list[Observation]:
    rows = []
    for planting in plantings:
        if planting.status != Planting.Status.GROWING:
            continue
        for day in range(OBSERVATION_DAYS):
            date = planting.planted_on + dt.timedelta(days=day)
            if date >= today:
                break
            # Seeded per planting and day: a later run regenerates exactly the same readings.
            rng = random.Random(f"{planting.pk}-{day}")  # noqa: S311
            at = dt.datetime.combine(date, dt.time(6, 30), tzinfo=dt.UTC)
            device = f"probe-{planting.field_id.hex[:6]}"
            readings = [
                ("soil_moisture", round(rng.uniform(0.18, 0.42), 3), "m3/m3", ""),
                ("temperature", round(rng.uniform(11.0, 27.0), 1), "degC", ""),
            ]
            if rng.random() < 0.35:
                readings.append(("rainfall", round(rng.uniform(0.5, 38.0), 1), "mm", ""))
            if day % 14 == 7:
                readings.append(("growth_stage", float(min(10 + day, 89)), "BBCH", ""))
            if rng.random() < 0.03:
                readings.append(
                    ("pest", round(rng.uniform(0.02, 0.2), 2), "ratio", "fall armyworm")
                )
            for kind, value, unit, text in readings:
                rows.append(
                    Observation(
                        id=_id("obs", planting.pk, day, kind),
                        field_id=planting.field_id,
                        planting=planting,
                        observed_at=at,
                        kind=kind,
                        value=value,
                        unit=unit,
                        text=text,
                        device_id=device,
                        recorded_by=agent,
                        created_by=agent,
                    )
                )
    return rows
