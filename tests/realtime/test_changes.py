"""The ``changes`` nudge (issue 18, item 4): table names only, for the user's (or device's) sync
scope, never across tenants or outside the user's containers."""

from __future__ import annotations

from accounts.roles import Role
from tests.realtime.board import book, next_start
from tests.realtime.conftest import RealtimeWorld, access_token, quiet, ready, receive, subscribe


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
