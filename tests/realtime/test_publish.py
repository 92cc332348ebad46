"""Authorization changes are published after the commit, never before, and name the tenant
(issue 18, item 6): ``pg_notify('verdant_realtime_auth', '<schema>:<user id>')`` from the
services — heard here on a LISTEN connection of our own, as a real-time process hears it. A
rolled-back change publishes nothing; the colliding tenants' payloads differ by schema only."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from django.db import transaction

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_update
from apikit.access_events import AUTH_CHANNEL
from apikit.policy import AccessLevel, container_access_grant, container_access_revoke
from clinical.models import Facility
from realtime.listener import conninfo
from tests.realtime.conftest import RealtimeWorld, in_schema
from tests.security.world import SHARED, USER_IDS


@pytest.fixture
def listening(committed_db: None) -> Iterator[psycopg.Connection]:
    with psycopg.connect(conninfo(), autocommit=True) as listener:
        listener.execute(f"LISTEN {AUTH_CHANNEL}")
        yield listener


def _heard(listener: psycopg.Connection, timeout: float = 1.0) -> list[str]:
    """Every payload received within ``timeout`` seconds."""
    return [notification.payload for notification in listener.notifies(timeout=timeout)]


def test_a_change_is_published_on_commit_only_with_its_schema(
    rt: RealtimeWorld, listening: psycopg.Connection
) -> None:
    a, b = rt.world.a, rt.world.b
    nurse = USER_IDS[Role.NURSE]

    def change_then_check() -> None:
        with transaction.atomic():
            user_update(user=User.objects.get(pk=nurse), role=Role.VIEWER)
            # Inside the transaction: nothing yet (it might still roll back).
            assert _heard(listening, 0.3) == []
        user_update(user=User.objects.get(pk=nurse), role=Role.NURSE)

    in_schema(a.schema, change_then_check)
    assert _heard(listening) == [f"{a.schema}:{nurse}", f"{a.schema}:{nurse}"]
    # The same user id in B is another payload: B's sockets are not A's.
    assert f"{a.schema}:{nurse}" != f"{b.schema}:{nurse}"


def test_a_rolled_back_change_publishes_nothing(
    rt: RealtimeWorld, listening: psycopg.Connection
) -> None:
    a = rt.world.a

    def change_and_roll_back() -> None:
        with transaction.atomic():
            user = User.objects.get(pk=USER_IDS[Role.RECEPTIONIST])
            facility = Facility.objects.get(pk=SHARED["clinical.facility"])
            container_access_revoke(user=user, container=facility, level=AccessLevel.VIEW)
            transaction.set_rollback(True)

    in_schema(a.schema, change_and_roll_back)
    assert _heard(listening) == []


def test_grants_publish_for_their_user(rt: RealtimeWorld, listening: psycopg.Connection) -> None:
    a = rt.world.a
    receptionist = USER_IDS[Role.RECEPTIONIST]

    def grant_and_revoke() -> None:
        user = User.objects.get(pk=receptionist)
        facility = Facility.objects.get(pk=SHARED["clinical.facility#2"])
        container_access_grant(user=user, container=facility, level=AccessLevel.VIEW)
        container_access_revoke(user=user, container=facility, level=AccessLevel.VIEW)

    in_schema(a.schema, grant_and_revoke)
    assert _heard(listening) == [f"{a.schema}:{receptionist}"] * 2
