"""The security suite's committed world: tenants ``sec-a`` and ``sec-b`` (see world.py), seeded
once for the package and dropped after it, with an access token per role per tenant.

Tests run in-process (APIClient) inside the usual rolled-back test transaction, so A's
legitimate writes to its own rows vanish after each test, while B's committed rows stay as
seeded: any change to B's schema is an attack that worked."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tokens import token_pair_issue
from apikit.tenancy import activate_public
from tenants.models import Tenant
from tests.security.world import ROLES, USER_IDS, Side, World, world_create, world_drop

PREFIX = "sec"


@dataclass(frozen=True)
class SecurityWorld:
    world: World
    # tokens[side key][role] -> access token
    tokens: dict[str, dict[str, str]]
    refresh: dict[str, dict[str, str]]

    @property
    def a(self) -> Side:
        return self.world.a

    @property
    def b(self) -> Side:
        return self.world.b

    def client(self, side: Side, role: str | None = None, *, host: str | None = None) -> APIClient:
        """A client on ``host`` (default: the side's own host) carrying ``side``'s token for
        ``role`` (anonymous when None)."""
        client = APIClient(HTTP_HOST=host or side.host)
        if role is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.tokens[side.key][role]}")
        return client


def _issue_tokens(side: Side) -> tuple[dict[str, str], dict[str, str]]:
    access: dict[str, str] = {}
    refresh: dict[str, str] = {}
    with tenant_context(Tenant.objects.get(slug=side.slug)):
        for role in ROLES:
            pair = token_pair_issue(user=User.objects.get(pk=USER_IDS[role]))
            access[role], refresh[role] = pair.access, pair.refresh
    activate_public()
    return access, refresh


@pytest.fixture(scope="package")
def security_world(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[SecurityWorld]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        assert not connection.in_atomic_block
        world = world_create(PREFIX)
        tokens: dict[str, dict[str, str]] = {}
        refresh: dict[str, dict[str, str]] = {}
        for side in world.sides:
            tokens[side.key], refresh[side.key] = _issue_tokens(side)
        try:
            yield SecurityWorld(world=world, tokens=tokens, refresh=refresh)
        finally:
            connection.close()  # leave no transaction state from a failed test behind
            world_drop(PREFIX)


@pytest.fixture
def sw(security_world: SecurityWorld, db: None) -> SecurityWorld:
    """The world, inside the test's rolled-back transaction."""
    return security_world
