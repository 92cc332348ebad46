"""Identity in the handshake (issue 18, items 1-3): tenant by Host, token as a subprotocol,
refusals as close codes after the accept, Origin, probes."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import requests
from websockets.sync.client import connect

from accounts.models import User
from accounts.roles import Role
from sync.models import Device
from sync.services import device_register, device_revoke
from tests.realtime.conftest import (
    RealtimeWorld,
    access_token,
    close_code,
    in_schema,
    open_socket,
    receive,
    send,
)
from tests.security.world import USER_IDS


def test_a_valid_token_is_answered_with_verdant_v1_only_and_the_database_role(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a = rt.world.a
    token = access_token(a.schema, Role.RECEPTIONIST)
    with open_socket(rt, a.host, token=token) as ws:
        assert ws.subprotocol == "verdant.v1"
        assert receive(ws) == {"type": "ready", "protocol": "verdant.v1", "role": "receptionist"}
        send(ws, {"type": "ping"})
        assert receive(ws) == {"type": "pong"}


def test_role_comes_from_the_database_not_the_token(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    token = access_token(a.schema, Role.VIEWER)
    # A token whose role claim says admin changes nothing: the claim is not read.
    with open_socket(rt, a.host, token=token) as ws:
        assert receive(ws)["role"] == "viewer"


def test_unknown_host_is_4404(rt: RealtimeWorld, committed_db: None) -> None:
    token = access_token(rt.world.a.schema, Role.RECEPTIONIST)
    with open_socket(rt, "nobody.verdant.test", token=token) as ws:
        assert close_code(ws) == 4404


def test_unknown_path_is_4404(rt: RealtimeWorld, committed_db: None) -> None:
    token = access_token(rt.world.a.schema, Role.RECEPTIONIST)
    with open_socket(rt, rt.world.a.host, token=token, path="/ws/v2/") as ws:
        assert close_code(ws) == 4404


def test_a_token_of_the_colliding_tenant_is_refused_4403(
    rt: RealtimeWorld, committed_db: None
) -> None:
    """Same user id, same email in B: B's token on A's host is refused."""
    token_b = access_token(rt.world.b.schema, Role.RECEPTIONIST)
    with open_socket(rt, rt.world.a.host, token=token_b) as ws:
        assert close_code(ws) == 4403
    # Even claiming A's tid: B's user... is A's user by id, so the signature is what protects;
    # a token claiming another tid than the host's is refused.
    forged = access_token(rt.world.b.schema, Role.RECEPTIONIST, tid=rt.world.a.schema)
    with open_socket(rt, rt.world.b.host, token=forged) as ws:
        assert close_code(ws) == 4403


def test_garbage_token_is_4403(rt: RealtimeWorld, committed_db: None) -> None:
    with open_socket(rt, rt.world.a.host, token="not-a-jwt") as ws:
        assert close_code(ws) == 4403


def test_an_expired_token_is_4401_and_a_live_one_is_closed_4401_at_exp(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a = rt.world.a
    expired = access_token(a.schema, Role.RECEPTIONIST, lifetime=dt.timedelta(seconds=-5))
    with open_socket(rt, a.host, token=expired) as ws:
        assert close_code(ws) == 4401
    short = access_token(a.schema, Role.RECEPTIONIST, lifetime=dt.timedelta(seconds=2))
    started = time.monotonic()
    with open_socket(rt, a.host, token=short) as ws:
        assert receive(ws)["type"] == "ready"
        assert close_code(ws, timeout=10) == 4401
    assert time.monotonic() - started < 6


def test_inactive_user_is_4403(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    token = access_token(a.schema, Role.NURSE)
    in_schema(
        a.schema, lambda: User.objects.filter(pk=USER_IDS[Role.NURSE]).update(is_active=False)
    )
    try:
        with open_socket(rt, a.host, token=token) as ws:
            assert close_code(ws) == 4403
    finally:
        in_schema(
            a.schema, lambda: User.objects.filter(pk=USER_IDS[Role.NURSE]).update(is_active=True)
        )


def test_a_revoked_device_is_4403(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a

    def register() -> str:
        user = User.objects.get(pk=USER_IDS[Role.FIELD_AGENT])
        return str(device_register(user=user, name="tablet", platform="android").pk)

    def revoke() -> None:
        admin = User.objects.get(pk=USER_IDS[Role.TENANT_ADMIN])
        device_revoke(device=Device.objects.get(pk=device_id), actor=admin)

    device_id = in_schema(a.schema, register)
    token = access_token(a.schema, Role.FIELD_AGENT, device_id=device_id)
    with open_socket(rt, a.host, token=token) as ws:
        assert receive(ws)["type"] == "ready"
    in_schema(a.schema, revoke)
    # The revocation reaches the server's device cache within TENANT_ROUTING_RECHECK_SECONDS.
    time.sleep(1.5)
    with open_socket(rt, a.host, token=token) as ws:
        assert close_code(ws) == 4403


@pytest.mark.parametrize("origin", ["http://rt-b.verdant.test", "https://evil.example", "null"])
def test_a_foreign_origin_is_4403(rt: RealtimeWorld, committed_db: None, origin: str) -> None:
    token = access_token(rt.world.a.schema, Role.RECEPTIONIST)
    with open_socket(rt, rt.world.a.host, token=token, origin=origin) as ws:
        assert close_code(ws) == 4403


def test_the_own_origin_is_accepted(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    token = access_token(a.schema, Role.RECEPTIONIST)
    with open_socket(rt, a.host, token=token, origin=f"https://{a.host}") as ws:
        assert receive(ws)["type"] == "ready"


@pytest.mark.slow
def test_no_token_and_no_auth_message_is_4408_and_a_cookie_never_authenticates(
    rt: RealtimeWorld, committed_db: None
) -> None:
    headers = {"Cookie": "sessionid=anything; csrftoken=x"}
    with open_socket(rt, rt.world.a.host, token=None, headers=headers) as ws:
        assert ws.subprotocol == "verdant.v1"
        assert close_code(ws, timeout=10) == 4408


def test_a_client_offering_no_subprotocol_authenticates_with_its_first_message(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a = rt.world.a
    with connect(
        f"ws://{a.host}:{rt.server.port}/ws/v1/", sock=rt.server.socket(), open_timeout=10
    ) as ws:
        assert ws.subprotocol is None
        send(ws, {"type": "auth", "token": access_token(a.schema, Role.NURSE)})
        assert receive(ws)["role"] == "nurse"


def test_subprotocols_without_verdant_v1_are_1008(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    token = access_token(a.schema, Role.NURSE)
    with connect(
        f"ws://{a.host}:{rt.server.port}/ws/v1/",
        sock=rt.server.socket(),
        subprotocols=[f"bearer.{token}"],  # type: ignore[list-item]
        open_timeout=10,
    ) as ws:
        assert close_code(ws) == 1008


def test_a_token_sent_as_the_first_message_authenticates(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a = rt.world.a
    with open_socket(rt, a.host, token=None) as ws:
        send(ws, {"type": "auth", "token": access_token(a.schema, Role.CLINICIAN)})
        assert receive(ws)["role"] == "clinician"


def test_probes_are_served_over_http(rt: RealtimeWorld) -> None:
    base = f"http://127.0.0.1:{rt.server.port}"
    assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    ready = requests.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["database"] == "ok"
    missing = requests.get(f"{base}/api/v1/", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
