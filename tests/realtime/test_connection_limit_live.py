"""Connections per user across two real uvicorn processes sharing Redis (issue 18, item 4), as
two real-time pods behind one ingress: REALTIME_MAX_CONNECTIONS_PER_USER (3 in the live settings)
holds for both together, per organisation, and a closed socket frees its place for the other
process at once. (Lease expiry after a crash and Redis being down: test_connection_leases.py.)
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings

from accounts.roles import Role
from realtime.leases import lease_key
from tests.realtime.conftest import (
    RealtimeWorld,
    access_token,
    close_code,
    open_socket,
    quiet,
    ready,
    receive,
)
from tests.realtime.live import LiveASGI, live_uvicorn
from tests.security.world import USER_IDS

LIMIT = 3  # tests/realtime/live_settings.py


@pytest.fixture(scope="module")
def second(rt: RealtimeWorld) -> Iterator[RealtimeWorld]:
    """Another real-time process on the same database, Redis and cache prefix."""
    server: LiveASGI
    with live_uvicorn(name="realtime-second") as server:
        yield RealtimeWorld(server=server, world=rt.world)


def _leases(schema: str, role: str) -> int:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.zcard(lease_key(schema=schema, user_id=str(USER_IDS[role]))))
    finally:
        client.close()


def _until_released(schema: str, role: str, count: int) -> None:
    deadline = time.monotonic() + 10
    while _leases(schema, role) != count:
        assert time.monotonic() < deadline, _leases(schema, role)
        time.sleep(0.05)


def test_the_limit_holds_across_two_processes_per_organisation(
    rt: RealtimeWorld, second: RealtimeWorld, committed_db: None
) -> None:
    a, b = rt.world.a, rt.world.b
    role = Role.NURSE
    token_a = access_token(a.schema, role)
    # An earlier test's sockets of this user are closed, their releases maybe still under way.
    _until_released(a.schema, role, 0)
    with (
        ready(rt, a.host, token_a),
        ready(rt, a.host, token_a) as on_first,
        ready(second, a.host, token_a),
    ):
        assert _leases(a.schema, role) == LIMIT
        # Each process holds fewer than the limit; one more is refused by either.
        for server in (second, rt):
            with open_socket(server, a.host, token=token_a) as refused:
                assert close_code(refused) == 4429
        # The colliding user (same id, same email) of the other organisation is another user.
        token_b = access_token(b.schema, role)
        with ready(second, b.host, token_b) as other, ready(rt, b.host, token_b):
            assert quiet(other, seconds=0.5) == []
            assert _leases(b.schema, role) == 2
        # Closing a socket on the first process frees its place on the second at once (no
        # waiting for a lease to expire).
        on_first.close()
        _until_released(a.schema, role, LIMIT - 1)
        with open_socket(second, a.host, token=token_a) as again:
            assert receive(again, timeout=10)["type"] == "ready"
            with open_socket(rt, a.host, token=token_a) as refused:
                assert close_code(refused) == 4429
    # Every socket closed: nothing is left counting for either user.
    _until_released(a.schema, role, 0)
    _until_released(b.schema, role, 0)
