"""Connections per user across processes (issue 18, item 4): a lease per socket in Redis.

Two ``SocketRegistry`` objects stand for two real-time processes sharing the suite's Redis (the
live two-process test is tests/realtime/test_connection_limit_live.py). Every test uses a user id
of its own, under the run's own cache prefix, so no test sees another's leases.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from observability import metrics
from realtime import leases
from realtime.leases import lease_key, leases_count
from realtime.sockets import SocketRegistry
from tests.security.live import free_port

LIMIT = 3
SCHEMA_A = "rt_lease_a"
SCHEMA_B = "rt_lease_b"
ROOT = Path(__file__).resolve().parents[2]


class FakeSocket:
    """What the registry needs of a consumer."""

    def __init__(self) -> None:
        self.rechecks = 0
        self.tenant_rechecks = 0

    def recheck_soon(self) -> None:
        self.rechecks += 1

    def recheck_tenant_soon(self) -> None:
        self.tenant_rechecks += 1

    async def go_away(self) -> None:
        pass


@pytest.fixture(autouse=True)
def limit(settings: Any) -> None:
    settings.REALTIME_MAX_CONNECTIONS_PER_USER = LIMIT


@pytest.fixture
def user_id() -> str:
    return str(uuid.uuid4())


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    """Runs ``scenario`` in a fresh event loop and closes its Redis client before the loop ends."""

    async def main() -> None:
        try:
            await scenario()
        finally:
            await leases.client_close()

    asyncio.run(main())


async def fill(registry: SocketRegistry, schema: str, user_id: str, n: int) -> list[FakeSocket]:
    sockets = [FakeSocket() for _ in range(n)]
    for socket in sockets:
        assert await registry.register(schema=schema, user_id=user_id, socket=socket)
    return sockets


def test_the_limit_holds_across_two_processes(user_id: str) -> None:
    async def scenario() -> None:
        first, second = SocketRegistry(), SocketRegistry()
        await fill(first, SCHEMA_A, user_id, 2)
        await fill(second, SCHEMA_A, user_id, 1)
        # Each process holds fewer than the limit; together they hold all of it.
        for registry in (first, second):
            assert not await registry.register(
                schema=SCHEMA_A, user_id=user_id, socket=FakeSocket()
            )
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == LIMIT
        # A refused socket is not counted anywhere (nor re-checked for the user).
        assert first.recheck(schema=SCHEMA_A, user_id=user_id) == 2
        assert second.recheck(schema=SCHEMA_A, user_id=user_id) == 1
        await first.close()
        await second.close()

    run(scenario)


def test_concurrent_handshakes_in_two_processes_never_exceed_the_limit(user_id: str) -> None:
    """The script drops, counts and adds in one step: of 2 x LIMIT simultaneous handshakes
    exactly LIMIT are admitted."""

    async def scenario() -> None:
        first, second = SocketRegistry(), SocketRegistry()
        admitted = await asyncio.gather(
            *(
                registry.register(schema=SCHEMA_A, user_id=user_id, socket=FakeSocket())
                for _ in range(LIMIT)
                for registry in (first, second)
            )
        )
        assert sum(admitted) == LIMIT
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == LIMIT
        await first.close()
        await second.close()

    run(scenario)


def test_colliding_tenants_are_counted_apart(user_id: str) -> None:
    """The same user id in two organisations is two users: A's sockets never count against B."""

    async def scenario() -> None:
        first, second = SocketRegistry(), SocketRegistry()
        await fill(first, SCHEMA_A, user_id, LIMIT)
        assert not await second.register(schema=SCHEMA_A, user_id=user_id, socket=FakeSocket())
        tenant_b = await fill(second, SCHEMA_B, user_id, LIMIT)
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == LIMIT
        assert await leases_count(schema=SCHEMA_B, user_id=user_id) == LIMIT
        assert lease_key(schema=SCHEMA_A, user_id=user_id) != lease_key(
            schema=SCHEMA_B, user_id=user_id
        )
        # Closing B's sockets frees B's places only.
        for socket in tenant_b:
            second.unregister(schema=SCHEMA_B, user_id=user_id, socket=socket)
        await second.close()
        assert await leases_count(schema=SCHEMA_B, user_id=user_id) == 0
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == LIMIT
        # A published change for the user in B re-checks nothing in A.
        assert first.recheck(schema=SCHEMA_B, user_id=user_id) == 0
        await first.close()

    run(scenario)


def test_a_tenant_wide_recheck_asks_that_tenants_sockets_only(user_id: str) -> None:
    """A suspension of A re-checks A's sockets, not those of the colliding user of B held by the
    same process; every socket stays listed for the drain."""

    async def scenario() -> None:
        registry = SocketRegistry()
        tenant_a = await fill(registry, SCHEMA_A, user_id, 2)
        tenant_b = await fill(registry, SCHEMA_B, user_id, 1)
        assert registry.recheck_tenant(schema=SCHEMA_A) == 2
        assert [s.tenant_rechecks for s in tenant_a] == [1, 1]
        assert [s.tenant_rechecks for s in tenant_b] == [0]
        assert [s.rechecks for s in [*tenant_a, *tenant_b]] == [0, 0, 0]
        assert set(registry.sockets()) == {*tenant_a, *tenant_b}
        for schema, sockets in ((SCHEMA_A, tenant_a), (SCHEMA_B, tenant_b)):
            for socket in sockets:
                registry.unregister(schema=schema, user_id=user_id, socket=socket)
        await registry.close()

    run(scenario)


def test_closing_releases_the_place_at_once(user_id: str) -> None:
    async def scenario() -> None:
        # Leases of 90 s: only the release can free the place within this test.
        first, second = SocketRegistry(), SocketRegistry()
        sockets = await fill(first, SCHEMA_A, user_id, LIMIT)
        assert not await second.register(schema=SCHEMA_A, user_id=user_id, socket=FakeSocket())
        first.unregister(schema=SCHEMA_A, user_id=user_id, socket=sockets[0])
        await first.close()  # waits for the release under way
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == LIMIT - 1
        assert await second.register(schema=SCHEMA_A, user_id=user_id, socket=FakeSocket())
        # Unregistering twice (close, then disconnect) releases nothing more.
        first.unregister(schema=SCHEMA_A, user_id=user_id, socket=sockets[0])
        await first.close()
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == LIMIT
        await second.close()

    run(scenario)


def test_a_crashed_process_leases_expire(user_id: str) -> None:
    """A process that dies stops renewing: its leases stop counting after one lease period,
    with nobody decrementing anything (the leak a shared counter would have)."""

    async def scenario() -> None:
        crashed = SocketRegistry(lease_seconds=1.0, renew_seconds=60.0)
        survivor = SocketRegistry()
        await fill(crashed, SCHEMA_A, user_id, LIMIT)
        await crashed.close()  # no release: what a killed pod leaves behind
        assert not await survivor.register(schema=SCHEMA_A, user_id=user_id, socket=FakeSocket())
        await asyncio.sleep(1.2)
        await fill(survivor, SCHEMA_A, user_id, LIMIT)
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == LIMIT
        await survivor.close()

    run(scenario)


def test_a_live_process_renews_its_leases(user_id: str) -> None:
    async def scenario() -> None:
        live = SocketRegistry(lease_seconds=1.0, renew_seconds=0.25)
        other = SocketRegistry()
        await fill(live, SCHEMA_A, user_id, LIMIT)
        await asyncio.sleep(2.0)  # two lease periods
        assert not await other.register(schema=SCHEMA_A, user_id=user_id, socket=FakeSocket())
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == LIMIT
        await live.close()
        await other.close()

    run(scenario)


def test_the_key_expires_with_its_last_lease(user_id: str) -> None:
    """Nothing of a user is left in Redis once their leases have expired."""

    async def scenario() -> None:
        crashed = SocketRegistry(lease_seconds=1.0, renew_seconds=60.0)
        await fill(crashed, SCHEMA_A, user_id, 1)
        await crashed.close()

    run(scenario)
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        key = lease_key(schema=SCHEMA_A, user_id=user_id)
        assert client.exists(key) == 1
        assert 0 < client.pttl(key) <= 1000
        time.sleep(1.2)
        assert client.exists(key) == 0
    finally:
        client.close()


def test_a_close_during_a_renewal_still_releases(user_id: str) -> None:
    """A renewal that took its list before the socket closed must not add the released lease
    back (it would hold the place for a whole lease period)."""

    async def scenario() -> None:
        registry = SocketRegistry()
        (socket,) = await fill(registry, SCHEMA_A, user_id, 1)
        renewal = asyncio.create_task(registry.renew())
        await asyncio.sleep(0)  # the renewal holds its list and waits on Redis
        registry.unregister(schema=SCHEMA_A, user_id=user_id, socket=socket)
        await renewal
        await registry.close()
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == 0

    run(scenario)


def test_a_handshake_cancelled_while_acquiring_leaves_nothing(user_id: str) -> None:
    async def scenario() -> None:
        registry = SocketRegistry()
        task = asyncio.create_task(
            registry.register(schema=SCHEMA_A, user_id=user_id, socket=FakeSocket())
        )
        await asyncio.sleep(0)  # the registration is now waiting on Redis
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await registry.close()
        assert registry.open == {}
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == 0

    run(scenario)


def test_redis_unreachable_fails_open_with_the_process_limit_as_the_floor(
    user_id: str, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: sockets are admitted (a Redis outage must not refuse every live board), up to
    the limit in this process, with a warning; once Redis is back the next renewal adds the
    admitted sockets' leases, so they count cluster-wide again."""
    reachable = django_settings.REDIS_URL
    failures_before = metrics.value(leases.REDIS_FAILURE_COUNTER)

    async def scenario() -> None:
        registry = SocketRegistry()
        settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
        with caplog.at_level(logging.WARNING, logger="realtime.leases"):
            sockets = await fill(registry, SCHEMA_A, user_id, LIMIT)
            assert not await registry.register(
                schema=SCHEMA_A, user_id=user_id, socket=FakeSocket()
            )
            await registry.renew()
            registry.unregister(schema=SCHEMA_A, user_id=user_id, socket=sockets[0])
            await registry.close()
        warnings = [r for r in caplog.records if r.name == "realtime.leases"]
        # One warning per outage, not one per call.
        assert len(warnings) == 1
        assert warnings[0].levelno == logging.WARNING
        assert "per process" in warnings[0].getMessage()
        assert metrics.value(leases.REDIS_FAILURE_COUNTER) >= failures_before + LIMIT + 2

        settings.REDIS_URL = reachable
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="realtime.leases"):
            await registry.renew()
        assert any("reachable again" in r.getMessage() for r in caplog.records)
        assert await leases_count(schema=SCHEMA_A, user_id=user_id) == LIMIT - 1
        other = SocketRegistry()
        assert await other.register(schema=SCHEMA_A, user_id=user_id, socket=FakeSocket())
        assert not await other.register(schema=SCHEMA_A, user_id=user_id, socket=FakeSocket())
        await other.close()

    run(scenario)


@pytest.mark.parametrize("raw", ["0", "-3"])
def test_a_limit_below_one_is_refused_at_start(raw: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import settings.test"],
        cwd=ROOT,
        env={**os.environ, "REALTIME_MAX_CONNECTIONS_PER_USER": raw},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert f"REALTIME_MAX_CONNECTIONS_PER_USER={raw} would refuse every WebSocket" in result.stderr
