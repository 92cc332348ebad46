"""Authorization stays live (issue 18, item 6): a withdrawn facility grant, a role change, a
deactivation, a password set by an admin or a revoked device, made through the services that
make them, is published on commit (apikit.access_events) and closes the affected socket with 4403
within 5 s — while the periodic sweep is at its production minute (tests/realtime/
live_settings.py), so the publish is what ends it. Tenants share user ids and emails: the same
change in tenant A leaves tenant B's socket of the same user id open."""

from __future__ import annotations

import time
from collections.abc import Callable

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_password_set, user_update
from apikit.policy import (
    AccessLevel,
    container_access_grant,
    container_access_revoke,
    is_staff_role,
)
from clinical.models import Facility
from sync.models import Device
from sync.services import device_register, device_revoke
from tests.realtime.board import board_params, next_start
from tests.realtime.conftest import (
    RealtimeWorld,
    access_token,
    close_code,
    closed_in_time,
    in_schema,
    open_socket,
    ready,
    receive,
    still_open,
    subscribe,
)
from tests.security.world import SHARED, USER_IDS

# The bound for an affected subscription to end after the change commits.


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
    params = board_params(next_start().date())
    with (
        ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws_a,
        ready(rt, b.host, access_token(b.schema, Role.RECEPTIONIST)) as ws_b,
    ):
        assert subscribe(ws_a, "s", "appointments", params=params)["type"] == "subscribed"
        assert subscribe(ws_b, "s", "appointments", params=params)["type"] == "subscribed"
        _receptionist_grant(a.schema, granted=False)
        try:
            closed_in_time(ws_a)
            # B's receptionist (same id, same email, same facility id) keeps the board.
            still_open(ws_b)
        finally:
            _receptionist_grant(a.schema, granted=True)


def _user_change_closes_only_a(
    rt: RealtimeWorld, role: str, change: Callable[[User], object], undo: dict[str, object]
) -> None:
    a, b = rt.world.a, rt.world.b
    user_id = USER_IDS[role]
    with (
        ready(rt, a.host, access_token(a.schema, role)) as ws_a,
        ready(rt, b.host, access_token(b.schema, role)) as ws_b,
    ):
        in_schema(a.schema, lambda: change(User.objects.get(pk=user_id)))
        try:
            closed_in_time(ws_a)
            still_open(ws_b)
        finally:
            # The undo bypasses the services on purpose: nothing is open to re-check.
            in_schema(a.schema, lambda: User.objects.filter(pk=user_id).update(**undo))


def test_a_role_change_closes_4403_in_its_tenant_only(
    rt: RealtimeWorld, committed_db: None
) -> None:
    _user_change_closes_only_a(
        rt,
        Role.NURSE,
        lambda user: user_update(user=user, role=Role.VIEWER),
        {"role": Role.NURSE, "is_staff": is_staff_role(Role.NURSE)},
    )


def test_a_deactivation_closes_4403_in_its_tenant_only(
    rt: RealtimeWorld, committed_db: None
) -> None:
    _user_change_closes_only_a(
        rt,
        Role.NURSE,
        lambda user: user_update(user=user, is_active=False),
        {"is_active": True, "deactivated_at": None},
    )


def test_a_password_set_by_an_admin_closes_4403_in_its_tenant_only(
    rt: RealtimeWorld, committed_db: None
) -> None:
    # The token's credentials version no longer matches: the socket's identity is gone. The
    # old hash comes back afterwards (other suites sign in with the world's passwords).
    old_hash = in_schema(
        rt.world.a.schema, lambda: User.objects.get(pk=USER_IDS[Role.VIEWER]).password
    )
    _user_change_closes_only_a(
        rt,
        Role.VIEWER,
        lambda user: user_password_set(user=user, password="A new, long passphrase 42!"),
        {"password": old_hash},
    )


def test_a_revoked_device_closes_its_open_socket_4403(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a, b = rt.world.a, rt.world.b
    user_id = USER_IDS[Role.FIELD_AGENT]

    def register() -> str:
        user = User.objects.get(pk=user_id)
        return str(device_register(user=user, name="tablet", platform="android").pk)

    device_a = in_schema(a.schema, register)
    device_b = in_schema(b.schema, register)
    with (
        ready(rt, a.host, access_token(a.schema, Role.FIELD_AGENT, device_id=device_a)) as ws_a,
        ready(rt, b.host, access_token(b.schema, Role.FIELD_AGENT, device_id=device_b)) as ws_b,
        # The same user's socket without a device token is not about that device.
        ready(rt, a.host, access_token(a.schema, Role.FIELD_AGENT)) as ws_plain,
    ):
        assert subscribe(ws_a, "sync", "changes")["type"] == "subscribed"
        admin_id = USER_IDS[Role.TENANT_ADMIN]
        in_schema(
            a.schema,
            lambda: device_revoke(
                device=Device.objects.get(pk=device_a), actor=User.objects.get(pk=admin_id)
            ),
        )
        closed_in_time(ws_a)
        still_open(ws_b)
        still_open(ws_plain)


def test_connections_per_user_are_limited_per_tenant_with_4429(
    rt: RealtimeWorld, committed_db: None
) -> None:
    """REALTIME_MAX_CONNECTIONS_PER_USER is 3 in the live settings: a fourth socket of the same
    user is closed 4429; the colliding user of the other tenant is counted apart, and a closed
    socket frees its place."""
    a, b = rt.world.a, rt.world.b
    token_a = access_token(a.schema, Role.CLINICIAN)
    with (
        ready(rt, a.host, token_a),
        ready(rt, a.host, token_a),
        ready(rt, a.host, token_a) as third,
    ):
        with open_socket(rt, a.host, token=token_a) as fourth:
            assert close_code(fourth) == 4429
        with ready(rt, b.host, access_token(b.schema, Role.CLINICIAN)) as other_tenant:
            still_open(other_tenant)
        third.close()
        deadline = time.monotonic() + 10
        while True:
            with open_socket(rt, a.host, token=token_a) as again:
                message = receive(again, timeout=10)
                if message["type"] == "ready":
                    break
            assert time.monotonic() < deadline, message
            time.sleep(0.1)
