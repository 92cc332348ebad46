"""Per-connection limits (issue 18, item 4, partly): frame size, message rate, subscriptions."""

from __future__ import annotations

from accounts.roles import Role
from realtime import limits
from tests.realtime.conftest import RealtimeWorld, access_token, close_code, ready, send, subscribe


def test_an_oversized_frame_is_1009(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
        ws.send("x" * (limits.MAX_MESSAGE_BYTES + 1))
        assert close_code(ws) == 1009


def test_a_flood_of_messages_is_1008(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
        for _ in range(limits.RATE_BURST * 3):
            send(ws, {"type": "ping"})
        assert close_code(ws) == 1008


def test_subscriptions_per_connection_are_capped(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    with ready(rt, a.host, access_token(a.schema, Role.TENANT_ADMIN)) as ws:
        for n in range(limits.MAX_SUBSCRIPTIONS):
            assert subscribe(ws, f"c{n}", "changes")["type"] == "subscribed"
        refused = subscribe(ws, "one-more", "changes")
        assert refused["type"] == "error"
        assert refused["code"] == "too_many_subscriptions"


def test_not_json_is_1008(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
        ws.send("hello")
        assert close_code(ws) == 1008
