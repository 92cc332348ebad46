"""Connection leases in Redis: the connections-per-user limit across every real-time process.

Each authenticated socket holds a *lease* in a sorted set per (tenant schema, user id) —
``<cache prefix>:realtime:connections:<schema>:<user id>``, member = the socket's lease id, score =
the lease's expiry (Redis server time, ms). The schema is in the key because tenants share user
ids: a user of tenant A never counts against the colliding user of tenant B.

Why leases, not a counter: a counter that a process increments on accept and decrements on close
stays too high forever when a pod is killed (OOM, node loss, SIGKILL after the grace period): its
users would be refused for good. A lease expires by itself unless its process renews it
(``realtime.sockets`` renews every lease of the process in one script call every
``CONNECTION_LEASE_RENEW_SECONDS``, and removes a socket's lease as it closes), so a crashed pod's
sockets stop counting within ``CONNECTION_LEASE_SECONDS``.

Why a Lua script (``lease_acquire.lua``): dropping expired leases, counting and adding must be one
atomic step, or two pods admitting the same user at the same moment could both take the last
place. Registered through redis-py's ``register_script`` (EVALSHA, loading the script when Redis
does not know it yet), on a ``redis.asyncio`` client: the event loop never blocks on Redis.

Failures raise ``redis.RedisError``; what to do then (fail open, with this process's own count as
the floor) is ``realtime.sockets``'s decision; ``redis_failed`` logs and counts them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import redis
from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript

from apikit.outage_log import OutageLog
from apikit.throttling import key_prefix

logger = logging.getLogger(__name__)

REDIS_FAILURE_COUNTER = "realtime_lease_redis_failures"
# A handshake waits for its lease: give up on an unreachable Redis quickly (and fail open).
REDIS_TIMEOUT_SECONDS = 0.5
# A reconnect storm (every client of a restarted pod at once) shares a few connections instead
# of opening one per handshake; a handshake waits at most this long for one.
REDIS_MAX_CONNECTIONS = 16
REDIS_POOL_WAIT_SECONDS = 2.0
# Leases renewed per script call: one call blocks Redis for well under a millisecond.
RENEW_BATCH = 500
FAILURE_LOG_INTERVAL_SECONDS = 30.0

_SOURCES = {
    name: Path(__file__).with_name(f"{name}.lua").read_text(encoding="utf-8")
    for name in ("lease_acquire", "lease_renew")
}


@dataclass(frozen=True)
class Lease:
    """One socket's lease: ``lease_id`` in the lease set of (``schema``, ``user_id``)."""

    schema: str
    user_id: str
    lease_id: str


def lease_key(*, schema: str, user_id: str) -> str:
    """The lease set of one user of one tenant (the deployment's cache prefix first, as the
    throttles' keys)."""
    return f"{key_prefix()}:realtime:connections:{schema}:{user_id}"


async def lease_acquire(*, lease: Lease, limit: int, lease_seconds: float) -> bool:
    """Add ``lease`` unless its user already holds ``limit`` live leases (expired ones do not
    count); True when added. Raises RedisError."""
    added = await _handle().scripts["lease_acquire"](
        keys=[lease_key(schema=lease.schema, user_id=lease.user_id)],
        args=[lease.lease_id, limit, int(lease_seconds * 1000)],
    )
    return bool(added)


async def leases_renew(*, leases: Sequence[Lease], lease_seconds: float) -> None:
    """Extend every lease in ``leases`` by ``lease_seconds`` from now (adding back any that is
    missing). Raises RedisError."""
    script = _handle().scripts["lease_renew"]
    for start in range(0, len(leases), RENEW_BATCH):
        batch = leases[start : start + RENEW_BATCH]
        await script(
            keys=[lease_key(schema=lease.schema, user_id=lease.user_id) for lease in batch],
            args=[int(lease_seconds * 1000), *(lease.lease_id for lease in batch)],
        )


async def lease_release(*, lease: Lease) -> None:
    """Remove ``lease`` at once (its socket closed). Raises RedisError."""
    await _handle().client.zrem(
        lease_key(schema=lease.schema, user_id=lease.user_id), lease.lease_id
    )


async def leases_count(*, schema: str, user_id: str) -> int:
    """Live leases of one user (operators' and tests' view; the limit is checked in the script).
    Raises RedisError."""
    client = _handle().client
    now_ms = int(time.time() * 1000)
    count = await client.zcount(lease_key(schema=schema, user_id=user_id), f"({now_ms}", "+inf")
    return int(count)


async def client_close() -> None:
    """Close this event loop's Redis client (tests: before their event loop ends)."""
    global _current
    handle, _current = _current, None
    if handle is not None and handle.loop is asyncio.get_running_loop():
        await _handle_close(handle)
    if _closing:
        await asyncio.gather(*_closing)


# --- the Redis client ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Handle:
    url: str
    loop: asyncio.AbstractEventLoop
    pool: BlockingConnectionPool[Connection]
    client: Redis
    scripts: dict[str, AsyncScript]


_current: _Handle | None = None
_closing: set[asyncio.Task[None]] = set()


async def _handle_close(handle: _Handle) -> None:
    # The pool holds every connection (the client borrows one per command).
    await handle.pool.disconnect()


def _handle() -> _Handle:
    """The process's client, created on first use in the running event loop (an asyncio client
    belongs to the loop it connected in) and again when ``settings.REDIS_URL`` changes (tests)."""
    global _current
    url = str(settings.REDIS_URL)
    loop = asyncio.get_running_loop()
    handle = _current
    if handle is None or handle.url != url or handle.loop is not loop:
        # No retries: a lease call either answers fast or the caller fails open; waiting on a
        # dead Redis would hold every handshake.
        pool: BlockingConnectionPool[Connection] = BlockingConnectionPool.from_url(
            url,
            max_connections=REDIS_MAX_CONNECTIONS,
            timeout=REDIS_POOL_WAIT_SECONDS,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
        )
        client = Redis(connection_pool=pool)
        if handle is not None and handle.loop is loop:
            # The URL changed (tests): close the old client's connections in the background.
            closing = loop.create_task(_handle_close(handle))
            _closing.add(closing)
            closing.add_done_callback(_closing.discard)
        handle = _Handle(
            url=url,
            loop=loop,
            pool=pool,
            client=client,
            scripts={name: client.register_script(source) for name, source in _SOURCES.items()},
        )
        _current = handle
    return handle


# --- failures ----------------------------------------------------------------------------------------


_health = OutageLog(
    logger=logger,
    counter=REDIS_FAILURE_COUNTER,
    failing="realtime: Redis unreachable, connections per user limited per process only",
    recovered="realtime: Redis reachable again, connections per user limited cluster-wide",
    interval_seconds=FAILURE_LOG_INTERVAL_SECONDS,
)


def redis_failed(*, error: redis.RedisError, doing: str) -> None:
    """Count (and log, rate-limited) a lease call that could not reach Redis."""
    _health.failed(error=error, doing=doing)


def redis_succeeded() -> None:
    _health.succeeded()
