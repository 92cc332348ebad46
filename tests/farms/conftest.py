"""Fixtures for the farm tests: in each tenant, farms F1 and F2 with a field, a planting, a few
observations and a harvest each, all with the SAME ids in alpha and beta; a field agent granted
F1 only (view) and an agronomist granted F1 only (manage)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create
from apikit.policy import AccessLevel, container_access_grant
from farms import services
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from tests.conftest import ADMIN_EMAIL, TenantWorld, login

STAFF_PASSWORD = "staff-Password-42"
AGENT_EMAIL = "agent@example.com"
AGRONOMIST_EMAIL = "agronomist@example.com"


def _id(n: int) -> uuid.UUID:
    return uuid.UUID(f"01900000-0000-7000-8000-0000000f{n:04x}")


F1, F2 = _id(1), _id(2)
FIELD1, FIELD2 = _id(0x11), _id(0x12)
CROP = _id(0x21)
PLANTING1, PLANTING2 = _id(0x31), _id(0x32)
OBS1, OBS2 = _id(0x41), _id(0x42)
HARVEST1, HARVEST2 = _id(0x51), _id(0x52)
AGENT_ID, AGRONOMIST_ID = _id(0x61), _id(0x62)

# Two fields ~1 km apart near Nakuru, Kenya (F1's west of 36.10, F2's east of it).
WEST_BBOX = "36.00,-0.40,36.10,-0.30"
EAST_BBOX = "36.10,-0.40,36.20,-0.30"


def square(lon: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    """A closed, counter-clockwise square polygon with its south-west corner at (lon, lat)."""
    return {
        "type": "Polygon",
        "coordinates": [
            [
                [lon, lat],
                [lon + size, lat],
                [lon + size, lat + size],
                [lon, lat + size],
                [lon, lat],
            ]
        ],
    }


@dataclass(frozen=True)
class FarmWorld:
    world: TenantWorld
    admin: User
    agent: User
    agronomist: User
    f1: Farm
    f2: Farm
    field1: Field
    field2: Field
    crop: Crop
    planting1: Planting
    planting2: Planting

    def admin_client(self) -> APIClient:
        return login(self.world)

    def agent_client(self) -> APIClient:
        return login(self.world, email=AGENT_EMAIL, password=STAFF_PASSWORD)

    def agronomist_client(self) -> APIClient:
        return login(self.world, email=AGRONOMIST_EMAIL, password=STAFF_PASSWORD)


def _make(world: TenantWorld) -> FarmWorld:
    slug = world.tenant.slug
    now = timezone.now()
    with tenant_context(world.tenant):
        admin = User.objects.get(email=ADMIN_EMAIL)
        agent = user_create(
            email=AGENT_EMAIL, role=Role.FIELD_AGENT, password=STAFF_PASSWORD, is_active=True
        )
        agronomist = user_create(
            email=AGRONOMIST_EMAIL, role=Role.AGRONOMIST, password=STAFF_PASSWORD, is_active=True
        )
        # The same user ids in both tenants: a grant looked up in the wrong schema would match.
        User.objects.filter(pk=agent.pk).update(id=AGENT_ID)
        User.objects.filter(pk=agronomist.pk).update(id=AGRONOMIST_ID)
        agent, agronomist = User.objects.get(pk=AGENT_ID), User.objects.get(pk=AGRONOMIST_ID)
        f1 = Farm.objects.create(id=F1, name=f"{slug} west farm", region="Rift Valley")
        f2 = Farm.objects.create(id=F2, name=f"{slug} east farm", region="Central")
        field1 = services.field_create(
            farm=f1, name=f"{slug} maize block", boundary=square(36.05, -0.35), actor=admin
        )
        field2 = services.field_create(
            farm=f2, name=f"{slug} bean block", boundary=square(36.15, -0.35), actor=admin
        )
        # Fixed ids, so both tenants hold the same primary keys.
        Field.objects.filter(pk=field1.pk).update(id=FIELD1)
        Field.objects.filter(pk=field2.pk).update(id=FIELD2)
        field1, field2 = Field.objects.get(pk=FIELD1), Field.objects.get(pk=FIELD2)
        crop = Crop.objects.create(id=CROP, name="Maize", variety="H614", category="cereal")
        planting1 = Planting.objects.create(
            id=PLANTING1,
            field=field1,
            crop=crop,
            season="2026 long rains",
            planted_on=dt.date(2026, 3, 20),
            expected_harvest_on=dt.date(2026, 8, 30),
            status=Planting.Status.GROWING,
        )
        planting2 = Planting.objects.create(
            id=PLANTING2,
            field=field2,
            crop=crop,
            season="2026 long rains",
            planted_on=dt.date(2026, 3, 22),
            status=Planting.Status.GROWING,
        )
        Observation.objects.create(
            id=OBS1,
            field=field1,
            planting=planting1,
            observed_at=now - dt.timedelta(days=2),
            kind="rainfall",
            value=12.5,
            unit="mm",
            text=f"{slug} west rain",
        )
        Observation.objects.create(
            id=OBS2,
            field=field2,
            planting=planting2,
            observed_at=now - dt.timedelta(days=2),
            kind="rainfall",
            value=3.0,
            unit="mm",
            text=f"{slug} east rain",
        )
        Harvest.objects.create(
            id=HARVEST1,
            planting=planting1,
            harvested_on=dt.date(2026, 4, 1),
            quantity_kg=Decimal(5),
        )
        Harvest.objects.create(
            id=HARVEST2,
            planting=planting2,
            harvested_on=dt.date(2026, 4, 1),
            quantity_kg=Decimal(7),
        )
        container_access_grant(user=agent, container=f1, level=AccessLevel.VIEW)
        container_access_grant(user=agronomist, container=f1, level=AccessLevel.VIEW)
        container_access_grant(user=agronomist, container=f1, level=AccessLevel.MANAGE)
    return FarmWorld(
        world, admin, agent, agronomist, f1, f2, field1, field2, crop, planting1, planting2
    )


@pytest.fixture
def farm_alpha(alpha: TenantWorld) -> FarmWorld:
    return _make(alpha)


@pytest.fixture
def farm_beta(beta: TenantWorld) -> FarmWorld:
    return _make(beta)


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()["error"]
    assert body["status"] == status
    return body


def streamed(response: Any) -> bytes:
    """The whole body of a streaming response (consumes it)."""
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content)
