"""The ``changes`` nudge (issue 18, item 4): table names only, for the user's (or device's) sync
scope, never across tenants or outside the user's containers."""

from __future__ import annotations

import time

from accounts.models import User
from accounts.roles import Role
from apikit.policy import AccessLevel, container_access_grant, container_access_revoke
from clinical.models import Facility
from tests.realtime.board import book, next_start
from tests.realtime.conftest import (
    RealtimeWorld,
    access_token,
    in_schema,
    quiet,
    ready,
    receive,
    subscribe,
)
from tests.security.world import SHARED, USER_IDS


def test_a_nudge_names_tables_only_and_stays_in_its_tenant(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a, b = rt.world.a, rt.world.b
    with (
        ready(rt, a.host, access_token(a.schema, Role.TENANT_ADMIN)) as ws_a,
        ready(rt, b.host, access_token(b.schema, Role.TENANT_ADMIN)) as ws_b,
    ):
        assert subscribe(ws_a, "c", "changes")["type"] == "subscribed"
        assert subscribe(ws_b, "c", "changes")["type"] == "subscribed"
        book(a.schema, starts_at=next_start())
        nudge = receive(ws_a)
        assert nudge["event"] == "changes"
        # A booking may touch its patient's row too (both are synced tables).
        assert "appointments" in nudge["tables"]
        assert set(nudge["tables"]) <= {"appointments", "patients"}
        assert set(nudge) == {"type", "id", "sub", "event", "tables"}
        assert quiet(ws_b) == []


def test_a_nudge_follows_the_users_containers(rt: RealtimeWorld, committed_db: None) -> None:
    """The receptionist sees facility 1 only: a booking at facility 2 is not their business."""
    a = rt.world.a
    with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
        assert subscribe(ws, "c", "changes")["type"] == "subscribed"
        book(a.schema, starts_at=next_start(), facility="clinical.facility#2")
        assert quiet(ws, 2.0) == []
        book(a.schema, starts_at=next_start())
        assert "appointments" in receive(ws)["tables"]


def _facility_two_grant(schema: str, *, granted: bool) -> None:
    def work() -> None:
        user = User.objects.get(pk=USER_IDS[Role.RECEPTIONIST])
        facility = Facility.objects.get(pk=SHARED["clinical.facility#2"])
        change = container_access_grant if granted else container_access_revoke
        change(user=user, container=facility, level=AccessLevel.VIEW)

    in_schema(schema, work)


def test_a_nudge_follows_a_grant_change_without_reconnecting(
    rt: RealtimeWorld, committed_db: None
) -> None:
    """Item 6: the published grant change refreshes an open ``changes`` subscription's scope —
    facility 2 granted: its bookings nudge; withdrawn again: they stop (the socket stays, as the
    user still may subscribe)."""
    a = rt.world.a
    with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
        assert subscribe(ws, "c", "changes")["type"] == "subscribed"
        _facility_two_grant(a.schema, granted=True)
        try:
            # The re-check runs when the grant's notification arrives; until then a booking
            # may still fall outside the old scope, so book again until one nudges.
            for _attempt in range(15):
                book(a.schema, starts_at=next_start(), facility="clinical.facility#2")
                if [m for m in quiet(ws, 2.0) if m.get("event") == "changes"]:
                    break
            else:
                raise AssertionError("the granted facility never nudged")
        finally:
            _facility_two_grant(a.schema, granted=False)
        time.sleep(1.0)  # the revocation's re-check (well under the 5 s bound)
        quiet(ws, 1.0)  # whatever the last booking still sent
        book(a.schema, starts_at=next_start(), facility="clinical.facility#2")
        assert quiet(ws, 2.0) == []
        assert subscribe(ws, "c2", "changes")["type"] == "subscribed"
