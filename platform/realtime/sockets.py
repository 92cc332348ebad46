"""The open, authenticated sockets of this process, by (tenant schema, user id), and their leases.

Two jobs need them. A published authorization change (``apikit.access_events``) re-checks that
user's sockets in that tenant at once (``user_recheck``): every process hears the publish, so each
asks its own sockets. The connections-per-user limit (``REALTIME_MAX_CONNECTIONS_PER_USER``)
holds across every real-time process: each socket holds a lease in Redis (``realtime.leases``),
renewed here for all of the process's sockets at once, released as the socket closes, and left to
expire when the process dies. This process's own count is checked first: it can only be lower
than the cluster-wide one, so it refuses without a Redis round trip, and it is what still bounds
a user while Redis is unreachable (the socket is then admitted: fail open, docs/realtime.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Protocol

import redis

from realtime import leases, limits
from realtime.leases import Lease

logger = logging.getLogger(__name__)


class OpenSocket(Protocol):
    """What a published change and the shutdown drain ask of a socket (``realtime.consumer``)."""

    def recheck_soon(self) -> None: ...

    def recheck_tenant_soon(self) -> None: ...

    async def go_away(self) -> None: ...


class SocketRegistry:
    """One process's sockets and leases (a test builds two to stand for two processes)."""

    def __init__(
        self,
        *,
        lease_seconds: float = limits.CONNECTION_LEASE_SECONDS,
        renew_seconds: float = limits.CONNECTION_LEASE_RENEW_SECONDS,
    ) -> None:
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.open: dict[tuple[str, str], dict[OpenSocket, Lease]] = {}
        # Leases whose acquisition is in flight: not renewed (a refused one was never added).
        self.acquiring: set[Lease] = set()
        # A renewal and a release of the same lease must not cross: a renewal landing after the
        # release would add the lease back for a whole lease period. A release waits while a
        # renewal (which may hold its lease) is under way; releases never wait on each other.
        self.renewal_idle = asyncio.Event()
        self.renewal_idle.set()
        self.renewer: asyncio.Task[None] | None = None
        self.releases: set[asyncio.Task[None]] = set()

    async def register(self, *, schema: str, user_id: str, socket: OpenSocket) -> bool:
        """Count ``socket`` for its user; False (and not counted) when the user already holds
        the limit in this process or, through their leases, across all processes."""
        limit = limits.max_connections_per_user()
        held = self.open.get((schema, user_id), {})
        if len(held) >= limit:
            return False
        lease = Lease(schema=schema, user_id=user_id, lease_id=uuid.uuid4().hex)
        # Counted here before the await: this process's concurrent handshakes see it.
        self.open[(schema, user_id)] = held
        held[socket] = lease
        self.acquiring.add(lease)
        self._renew_in_background()
        try:
            admitted = await self._acquire(lease=lease, limit=limit)
        except BaseException:
            # Cancelled mid-handshake: the script may have run, so release as a close would.
            self.acquiring.discard(lease)
            self.unregister(schema=schema, user_id=user_id, socket=socket)
            raise
        self.acquiring.discard(lease)
        if not admitted:
            self._forget(schema=schema, user_id=user_id, socket=socket)
        return admitted

    async def _acquire(self, *, lease: Lease, limit: int) -> bool:
        try:
            admitted = await leases.lease_acquire(
                lease=lease, limit=limit, lease_seconds=self.lease_seconds
            )
        except redis.RedisError as error:
            # Fail open (docs/realtime.md, "Limits"): a Redis outage must not refuse every
            # socket; this process's count (checked above) still bounds the user, and the next
            # renewal adds the lease once Redis answers, so the socket counts again.
            leases.redis_failed(error=error, doing="acquiring a connection lease")
            return True
        leases.redis_succeeded()
        return admitted

    def unregister(self, *, schema: str, user_id: str, socket: OpenSocket) -> None:
        """Stop counting ``socket``; its lease is released at once, in the background (the
        caller is a consumer closing, which must not wait on Redis)."""
        lease = self._forget(schema=schema, user_id=user_id, socket=socket)
        if lease is None:
            return
        task = asyncio.get_running_loop().create_task(self._release(lease=lease))
        self.releases.add(task)
        task.add_done_callback(self.releases.discard)

    def _forget(self, *, schema: str, user_id: str, socket: OpenSocket) -> Lease | None:
        held = self.open.get((schema, user_id))
        if held is None:
            return None
        lease = held.pop(socket, None)
        if not held:
            del self.open[(schema, user_id)]
        return lease

    async def _release(self, *, lease: Lease) -> None:
        # A renewal started before the socket was forgotten may hold this lease.
        await self.renewal_idle.wait()
        try:
            await leases.lease_release(lease=lease)
        except redis.RedisError as error:
            # The lease expires by itself within lease_seconds.
            leases.redis_failed(error=error, doing="releasing a connection lease")
        else:
            leases.redis_succeeded()

    def recheck(self, *, schema: str, user_id: str) -> int:
        """Ask every socket of ``user_id`` IN ``schema`` to re-check now; how many were asked."""
        held = list(self.open.get((schema, user_id), ()))
        for socket in held:
            socket.recheck_soon()
        return len(held)

    def recheck_tenant(self, *, schema: str) -> int:
        """Ask every socket of tenant ``schema`` (whatever its user) to re-check its tenant now;
        how many were asked."""
        held = [
            socket
            for (socket_schema, _), sockets in list(self.open.items())
            if socket_schema == schema
            for socket in list(sockets)
        ]
        for socket in held:
            socket.recheck_tenant_soon()
        return len(held)

    def sockets(self) -> list[OpenSocket]:
        """Every registered (authenticated) socket."""
        return [socket for sockets in list(self.open.values()) for socket in list(sockets)]

    async def renew(self) -> None:
        """Extend the lease of every socket this process holds (one script call per batch)."""
        held = [
            lease
            for sockets in self.open.values()
            for lease in sockets.values()
            if lease not in self.acquiring
        ]
        if not held:
            return
        self.renewal_idle.clear()
        try:
            await leases.leases_renew(leases=held, lease_seconds=self.lease_seconds)
        except redis.RedisError as error:
            leases.redis_failed(error=error, doing="renewing connection leases")
        else:
            leases.redis_succeeded()
        finally:
            self.renewal_idle.set()

    def _renew_in_background(self) -> None:
        if self.renewer is None or self.renewer.done():
            self.renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.renew_seconds)
            try:
                await self.renew()
            except Exception:
                # A bug must not stop the renewals: every lease of the process would expire and
                # its users could open more sockets than the limit.
                logger.exception("realtime: renewing connection leases failed")

    async def close(self) -> None:
        """Stop renewing and wait for the releases under way. The leases of sockets still
        registered are left to expire, as a crashed process leaves them (tests)."""
        if self.renewer is not None:
            self.renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.renewer
            self.renewer = None
        if self.releases:
            await asyncio.gather(*self.releases)


# This process's registry (one per ASGI process, like its relay).
_registry = SocketRegistry()


async def socket_register(*, schema: str, user_id: str, socket: OpenSocket) -> bool:
    """Count ``socket`` for its user; False (and not counted) beyond the per-user limit."""
    return await _registry.register(schema=schema, user_id=user_id, socket=socket)


def socket_unregister(*, schema: str, user_id: str, socket: OpenSocket) -> None:
    _registry.unregister(schema=schema, user_id=user_id, socket=socket)


def user_recheck(*, schema: str, user_id: str) -> int:
    """Ask every socket of ``user_id`` IN ``schema`` to re-check now; how many were asked."""
    return _registry.recheck(schema=schema, user_id=user_id)


def tenant_recheck(*, schema: str) -> int:
    """Ask every socket of tenant ``schema`` (whatever its user) to re-check its tenant now (a
    suspension or drop published by ``tenants.services``); how many were asked."""
    return _registry.recheck_tenant(schema=schema)


def every_socket() -> list[OpenSocket]:
    """Every registered (authenticated) socket of this process: the ones the drain closes."""
    return _registry.sockets()
