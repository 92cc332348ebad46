"""Authorization stays live (issue 18, item 6 — the periodic re-check only; no publish on commit
yet): a withdrawn facility grant, a deactivation or a role change closes an open socket with 4403
within the re-check interval (1 s in the live server's settings, 60 s by default)."""

from __future__ import annotations

import time

from accounts.models import User
from accounts.roles import Role
from apikit.policy import AccessLevel, container_access_grant, container_access_revoke
from clinical.models import Facility
from tests.realtime.board import next_start
from tests.realtime.conftest import (
    RealtimeWorld,
    access_token,
    close_code,
    in_schema,
    ready,
    subscribe,
)
from tests.security.world import SHARED, USER_IDS


def _receptionist_grant(schema: str, *, granted: bool) -> None:
    def work() -> None:
        user = User.objects.get(pk=USER_IDS[Role.RECEPTIONIST])
        facility = Facility.objects.get(pk=SHARED["clinical.facility"])
        if granted:
            container_access_grant(user=user, container=facility, level=AccessLevel.VIEW)
        else:
            container_access_revoke(user=user, container=facility, level=AccessLevel.VIEW)

    in_schema(schema, work)


def test_a_withdrawn_grant_ends_the_subscription_with_4403_in_its_tenant_only(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a, b = rt.world.a, rt.world.b
    params = {"facility": str(SHARED["clinical.facility"]), "from": next_start().date().isoformat()}
    with (
        ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws_a,
        ready(rt, b.host, access_token(b.schema, Role.RECEPTIONIST)) as ws_b,
    ):
        assert subscribe(ws_a, "s", "appointments", params=params)["type"] == "subscribed"
        assert subscribe(ws_b, "s", "appointments", params=params)["type"] == "subscribed"
        _receptionist_grant(a.schema, granted=False)
        try:
            started = time.monotonic()
            assert close_code(ws_a, timeout=15) == 4403
            assert time.monotonic() - started < 5
            # B's receptionist (same id, same email, same facility id) keeps the board.
            ws_b.send('{"type": "ping"}')
            assert "pong" in str(ws_b.recv(timeout=10))
        finally:
            _receptionist_grant(a.schema, granted=True)


def test_a_role_change_or_deactivation_closes_4403(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    user_id = USER_IDS[Role.NURSE]
    changes: list[tuple[dict[str, object], dict[str, object]]] = [
        ({"role": Role.VIEWER}, {"role": Role.NURSE}),
        ({"is_active": False}, {"is_active": True}),
    ]

    def apply(values: dict[str, object]) -> None:
        in_schema(a.schema, lambda: User.objects.filter(pk=user_id).update(**values))

    for change, undo in changes:
        with ready(rt, a.host, access_token(a.schema, Role.NURSE)) as ws:
            apply(change)
            try:
                assert close_code(ws, timeout=15) == 4403
            finally:
                apply(undo)
