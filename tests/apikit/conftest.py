"""Fixtures for the API platform tests: a toy Site (container) with Items in each tenant, with
the same ids in alpha and beta."""

import uuid
from dataclasses import dataclass

import pytest
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create
from tests.apikit.toy.models import Item, Site
from tests.conftest import ADMIN_EMAIL, TenantWorld

SITE_ID = uuid.UUID("01900000-0000-7000-8000-00000000a001")
OTHER_SITE_ID = uuid.UUID("01900000-0000-7000-8000-00000000a002")
ITEM_ID = uuid.UUID("01900000-0000-7000-8000-00000000b001")
OTHER_ITEM_ID = uuid.UUID("01900000-0000-7000-8000-00000000b002")
STAFF_PASSWORD = "staff-Password-42"


@dataclass(frozen=True)
class ToyWorld:
    world: TenantWorld
    admin: User
    site: Site
    other_site: Site
    item: Item
    other_item: Item


def _toy_world(world: TenantWorld) -> ToyWorld:
    with tenant_context(world.tenant):
        admin = User.objects.get(email=ADMIN_EMAIL)
        site = Site.objects.create(id=SITE_ID, name=f"{world.tenant.slug} north")
        other = Site.objects.create(id=OTHER_SITE_ID, name=f"{world.tenant.slug} south")
        item = Item.objects.create(
            id=ITEM_ID, site=site, name=f"{world.tenant.slug} hoe", quantity=3, colour="red"
        )
        other_item = Item.objects.create(
            id=OTHER_ITEM_ID, site=other, name=f"{world.tenant.slug} rake", quantity=5
        )
    return ToyWorld(world, admin, site, other, item, other_item)


@pytest.fixture
def toy_alpha(alpha: TenantWorld) -> ToyWorld:
    return _toy_world(alpha)


@pytest.fixture
def toy_beta(beta: TenantWorld) -> ToyWorld:
    return _toy_world(beta)


def make_staff(
    world: TenantWorld, *, role: str = Role.CLINICIAN, email: str = "staff@example.com"
) -> User:
    with tenant_context(world.tenant):
        return user_create(email=email, role=role, password=STAFF_PASSWORD, is_active=True)
