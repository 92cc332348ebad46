"""Real-time fixtures: the committed two-tenant world of the hardening suites (``rt-a`` / ``rt-b``,
same ids and emails in both, tests/security/world.py) and one real uvicorn serving settings.asgi.

Tests are synchronous and talk to the server with ``websockets.sync.client`` as a client would;
their writes commit (the server reads them from another process), in the test's tenant schema.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pytest
from django.db import connection
from django_tenants.utils import schema_context
from rest_framework_simplejwt.tokens import AccessToken
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from accounts.authentication import CREDENTIALS_VERSION_CLAIM, DEVICE_CLAIM, TENANT_CLAIM
from accounts.models import User
from tests.realtime.live import LiveASGI, live_uvicorn
from tests.security.world import USER_IDS, World, world_create, world_drop

PREFIX = "rt"
T = TypeVar("T")


@dataclass(frozen=True)
class RealtimeWorld:
    server: LiveASGI
    world: World


@pytest.fixture(scope="package")
def rt(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> Iterator[RealtimeWorld]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        assert not connection.in_atomic_block
        world = world_create(PREFIX)
        try:
            with live_uvicorn() as server:
                yield RealtimeWorld(server=server, world=world)
        finally:
            connection.close()
            world_drop(PREFIX)


@pytest.fixture
def committed_db(django_db_blocker: pytest.FixtureRequest) -> Iterator[None]:
    """The test's own writes commit at once (autocommit), like the API's."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield
        connection.set_schema_to_public()  # type: ignore[attr-defined]


def in_schema(schema: str, work: Callable[[], T]) -> T:
    with schema_context(schema):
        return work()


def access_token(
    schema: str,
    role: str,
    *,
    lifetime: dt.timedelta = dt.timedelta(minutes=15),
    device_id: str | None = None,
    tid: str | None = None,
) -> str:
    """A signed access token for ``role``'s user of ``schema`` (as the login endpoint issues)."""

    def issue() -> str:
        user = User.objects.get(pk=USER_IDS[role])
        token = AccessToken.for_user(user)
        token[TENANT_CLAIM] = tid or schema
        token[CREDENTIALS_VERSION_CLAIM] = user.credentials_version
        if device_id is not None:
            token[DEVICE_CLAIM] = device_id
        token.set_exp(lifetime=lifetime)
        return str(token)

    return in_schema(schema, issue)


def open_socket(
    rt: RealtimeWorld,
    host: str,
    *,
    token: str | None,
    origin: str | None = None,
    path: str = "/ws/v1/",
    extra_protocols: tuple[str, ...] = (),
    headers: dict[str, str] | None = None,
) -> ClientConnection:
    protocols = ["verdant.v1", *extra_protocols]
    if token is not None:
        protocols.append(f"bearer.{token}")
    return connect(
        f"ws://{host}:{rt.server.port}{path}",
        sock=rt.server.socket(),
        subprotocols=protocols,  # type: ignore[arg-type]
        origin=origin,  # type: ignore[arg-type]
        additional_headers=headers,
        open_timeout=10,
        compression=None,
    )


# Events wait for the commit-safe watermark: every older writing transaction of the test database
# must have finished. Generous, so a busy machine delays a test instead of failing it.
EVENT_TIMEOUT = 60.0


def receive(ws: ClientConnection, timeout: float = EVENT_TIMEOUT) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(ws.recv(timeout=timeout))
    return message


def receive_about(
    ws: ClientConnection, appointment_id: str, timeout: float = EVENT_TIMEOUT
) -> dict[str, Any]:
    """The next board event about ``appointment_id``, skipping events about the same tenant's
    other appointments: a subscription starts below the commit-safe watermark, so an earlier
    test's booking on the same day may still arrive (as an update) when the watermark was held
    back. Anything that is not a board event is returned as it is."""
    while True:
        message = receive(ws, timeout)
        about = message.get("appointment", {}).get("id") if message.get("type") == "event" else None
        if about is None or about == appointment_id:
            return message


def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    ws.send(orjson.dumps(message).decode())


@contextlib.contextmanager
def ready(rt: RealtimeWorld, host: str, token: str) -> Iterator[ClientConnection]:
    """An authenticated socket, its ``ready`` message read."""
    with open_socket(rt, host, token=token) as ws:
        assert receive(ws)["type"] == "ready"
        yield ws


def subscribe(ws: ClientConnection, sub: str, kind: str, **message: Any) -> dict[str, Any]:
    """Subscribes and returns the ``subscribed`` acknowledgement (after any replayed events)."""
    send(ws, {"type": "subscribe", "sub": sub, "kind": kind, **message})
    return receive(ws)


def close_code(ws: ClientConnection, timeout: float = 10) -> int:
    """The close code the server sent, skipping messages before it."""
    frame = None
    try:
        while True:
            ws.recv(timeout=timeout)
    except ConnectionClosed as closed:
        frame = closed.rcvd
    assert frame is not None, "closed without a close frame"
    return int(frame.code)


# A published change (a withdrawn grant, a suspended or dropped tenant) closes the sockets it
# concerns within this many seconds (issue 18, item 6).
WITHIN_SECONDS = 5


def closed_in_time(ws: ClientConnection, code: int = 4403) -> None:
    """The server closes ``ws`` with ``code`` within ``WITHIN_SECONDS``."""
    started = time.monotonic()
    assert close_code(ws, timeout=WITHIN_SECONDS + 5) == code
    assert time.monotonic() - started < WITHIN_SECONDS


def still_open(ws: ClientConnection) -> None:
    """``ws`` still answers a ping."""
    ws.send('{"type": "ping"}')
    assert receive(ws, timeout=10)["type"] == "pong"


def quiet(ws: ClientConnection, seconds: float = 1.5) -> list[dict[str, Any]]:
    """Every message received within ``seconds`` (expected: none)."""
    messages: list[dict[str, Any]] = []
    try:
        while True:
            messages.append(receive(ws, timeout=seconds))
    except TimeoutError:
        return messages
