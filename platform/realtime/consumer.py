"""The WebSocket endpoint ``/ws/v1/`` (docs/realtime.md).

Handshake: the tenant from the Host header (the HTTP routing cache; unknown host 4404, suspended
4403), ``Origin`` (when sent) equal to that host, the subprotocols ``verdant.v1`` +
``bearer.<access token>`` (the server answers ``verdant.v1`` only), the token checked as the REST
API checks it (``handshake.identify``). Every refusal a client must act on is sent after the
accept, as a close code; a client that cannot offer subprotocols may send ``{"type": "auth"}``
first, within ``AUTH_DEADLINE_SECONDS`` (4408). At the token's ``exp`` the socket closes 4401.
A user holding ``REALTIME_MAX_CONNECTIONS_PER_USER`` sockets across every real-time process
(leases in Redis, ``realtime.sockets``) gets 4429 for one more. Authorization stays live: a
published change (``apikit.access_events``) or the periodic sweep re-reads the user and re-opens
every subscription; anything withdrawn closes 4403.

All database work goes through ``realtime.db`` (the tenant entered inside the sync call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson
from channels.generic.websocket import AsyncWebsocketConsumer

from apikit.json import dumps
from realtime import limits
from realtime.db import expected_schema, public_call, tenant_call
from realtime.drain import CLOSE_GOING_AWAY, draining
from realtime.handshake import (
    CLOSE_AUTH_DEADLINE,
    CLOSE_EXPIRED,
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_POLICY,
    CLOSE_RESUME,
    PROTOCOL,
    Identity,
    RefusedError,
    host_of,
    identify,
    identity_recheck,
    offered_token,
    origin_allowed,
    tenant_for_host,
)
from realtime.log import log_position
from realtime.registry import SubscriptionError, subscription_kind
from realtime.relay import Subscription, format_position, get_relay, parse_event_id
from realtime.sockets import socket_register, socket_unregister
from sync.selectors import forget_cached_devices

CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL = 1011
# Too many sockets for this user (HTTP's 429): close another tab, retry later with backoff.
CLOSE_TOO_MANY_CONNECTIONS = 4429

logger = logging.getLogger(__name__)


class RealtimeConsumer(AsyncWebsocketConsumer):
    tenant: Any = None
    identity: Identity | None = None
    overflowed = False
    registered: tuple[str, str] | None = None
    # Set with ``recheck_requested`` by a published change to this user (not to the tenant).
    user_recheck_due = False

    async def connect(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.outbound: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(
            maxsize=limits.MAX_OUTBOUND_QUEUE
        )
        self.timers: list[asyncio.TimerHandle] = []
        self.writer: asyncio.Task[None] | None = None
        self.sweeper: asyncio.Task[None] | None = None
        self.closing = False
        # Set by a published authorization change for this user (realtime.sockets).
        self.recheck_requested = asyncio.Event()
        self.tokens = float(limits.RATE_BURST)
        self.refilled = time.monotonic()
        # Accept first: a refusal before the accept reaches a browser only as 1006.
        offered = list(self.scope.get("subprotocols") or [])
        await self.accept(subprotocol=PROTOCOL if PROTOCOL in offered else None)
        if draining():
            # This process is shutting down (realtime.drain): the client goes to another pod.
            await self._close(CLOSE_GOING_AWAY, "server going away: reconnect elsewhere")
            return
        try:
            raw_token = offered_token(self.scope)
            if not origin_allowed(self.scope):
                raise RefusedError(CLOSE_FORBIDDEN, "origin not allowed")
            self.tenant = await public_call(tenant_for_host, hostname=host_of(self.scope))
            expected_schema.set(self.tenant.schema_name)
            if raw_token is None:
                self._later(limits.AUTH_DEADLINE_SECONDS, CLOSE_AUTH_DEADLINE, "authenticate")
                return
            await self._authenticate(raw_token)
        except RefusedError as refused:
            await self._close(refused.code, refused.reason)

    async def _authenticate(self, raw_token: str) -> None:
        self.identity = await tenant_call(self.tenant, identify, raw_token=raw_token)
        for timer in self.timers:
            timer.cancel()
        self.timers = []
        key = (self.tenant.schema_name, str(self.identity.user.pk))
        if not await socket_register(schema=key[0], user_id=key[1], socket=self):
            raise RefusedError(CLOSE_TOO_MANY_CONNECTIONS, "too many connections for this user")
        self.registered = key
        # The relay starts this process's LISTEN connection, which also carries the published
        # authorization changes: a socket that never subscribes must hear them too.
        get_relay()
        self._later(self.identity.expires_at - time.time(), CLOSE_EXPIRED, "token expired")
        loop = asyncio.get_running_loop()
        self.writer = loop.create_task(self._write())
        self.sweeper = loop.create_task(self._sweep())
        self.deliver({"type": "ready", "protocol": PROTOCOL, "role": self.identity.role})

    def _later(self, delay: float, code: int, reason: str) -> None:
        loop = asyncio.get_running_loop()
        self.timers.append(
            loop.call_later(max(delay, 0), lambda: loop.create_task(self._close(code, reason)))
        )

    async def _close(self, code: int, reason: str) -> None:
        if self.closing:
            return
        self.closing = True
        self._release()
        with contextlib.suppress(Exception):
            await self.send(
                text_data=dumps({"type": "closing", "code": code, "reason": reason}).decode()
            )
        await self.close(code=code, reason=reason[:120])

    def _release(self) -> None:
        for timer in self.timers:
            timer.cancel()
        if self.registered is not None:
            socket_unregister(schema=self.registered[0], user_id=self.registered[1], socket=self)
            self.registered = None
        relay_subscriptions = list(self.subscriptions.values())
        self.subscriptions = {}
        if relay_subscriptions:
            relay = get_relay()
            for subscription in relay_subscriptions:
                relay.unsubscribe(subscription)
        for task in (self.writer, self.sweeper):
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def disconnect(self, code: int) -> None:
        self.closing = True
        self._release()

    def recheck_soon(self) -> None:
        """A change to this user's access was published (``realtime.sockets``): re-check now."""
        self.user_recheck_due = True
        self.recheck_requested.set()

    def recheck_tenant_soon(self) -> None:
        """The tenant was suspended, reactivated or dropped (``realtime.sockets``): re-check the
        tenant now (the user too only if that is due anyway)."""
        self.recheck_requested.set()

    async def go_away(self) -> None:
        """The process drains for shutdown (``realtime.drain``): the client reconnects to
        another pod and resumes from its last event id."""
        await self._close(CLOSE_GOING_AWAY, "server going away: reconnect and resume")

    async def _sweep(self) -> None:
        """Authorization stays live (issue 18, item 6): at once when a change to this user is
        published, and every ``recheck_seconds`` as the safety net, the user is re-read and
        every subscription's access re-checked by its kind (``recheck`` or ``open``); anything lost
        closes the socket with 4403."""
        while not self.closing:
            published = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.recheck_requested.wait(), timeout=limits.recheck_seconds()
                )
                published = True
            self.recheck_requested.clear()
            # A tenant-wide publication re-checks the tenant alone: none of its users changed,
            # and every socket of the tenant re-reading its user would queue that many reads on
            # the process's one database thread.
            user_too = not published or self.user_recheck_due
            self.user_recheck_due = False
            if self.identity is None or self.closing:
                continue
            try:
                # The organisation itself, as at the handshake: suspended (4403) or gone (4404).
                await public_call(tenant_for_host, hostname=host_of(self.scope))
            except RefusedError as refused:
                await self._close(refused.code, refused.reason)
                return
            if not user_too:
                continue
            try:
                states = await tenant_call(
                    self.tenant,
                    _recheck,
                    identity=self.identity,
                    subscriptions=list(self.subscriptions.values()),
                    fresh_devices=published,
                )
            except RefusedError as refused:
                await self._close(CLOSE_FORBIDDEN, refused.reason)
                return

            for sub_id, state in states.items():
                subscription = self.subscriptions.get(sub_id)
                if subscription is not None:
                    subscription.state = state

    # --- outbound ---------------------------------------------------------------------------------

    def deliver(self, message: dict[str, Any]) -> None:
        """Queue a frame; a client too slow to drain its queue is closed with 4409 (resume)."""
        if self.closing or self.overflowed:
            return
        try:
            self.outbound.put_nowait(message)
        except asyncio.QueueFull:
            self.overflowed = True
            asyncio.get_running_loop().create_task(self._close(CLOSE_RESUME, "too slow: resume"))

    async def _write(self) -> None:
        while True:
            message = await self.outbound.get()
            if message is None:
                return
            await self.send(text_data=dumps(message).decode())

    # --- inbound ----------------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return
        raw = text_data if text_data is not None else bytes_data or b""
        if len(raw) > limits.MAX_MESSAGE_BYTES:
            await self._close(CLOSE_TOO_BIG, "message too big")
            return
        if not self._take_token():
            await self._close(CLOSE_POLICY, "too many messages")
            return
        try:
            message = orjson.loads(raw)
        except orjson.JSONDecodeError:
            message = None
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self._close(CLOSE_POLICY, "send JSON objects with a type")
            return
        try:
            await self._handle(message)
        except RefusedError as refused:
            await self._close(refused.code, refused.reason)
        except Exception:
            # A bug or a database outage: a close frame the client can act on (reconnect with
            # jitter and resume), never a dropped TCP connection.
            logger.exception("realtime message handling failed")
            await self._close(CLOSE_INTERNAL, "internal error: reconnect and resume")

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(
            float(limits.RATE_BURST), self.tokens + (now - self.refilled) * limits.RATE_PER_SECOND
        )
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if self.identity is None:
            token = message.get("token")
            if kind != "auth" or not isinstance(token, str) or self.tenant is None:
                raise RefusedError(CLOSE_AUTH_DEADLINE, "authenticate first")
            await self._authenticate(token)
            return
        if kind == "ping":
            self.deliver({"type": "pong"})
        elif kind == "subscribe":
            await self._subscribe(message)
        elif kind == "unsubscribe":
            subscription = self.subscriptions.pop(str(message.get("sub")), None)
            if subscription is not None:
                get_relay().unsubscribe(subscription)
            self.deliver({"type": "unsubscribed", "sub": message.get("sub")})
        else:
            self._error(message, code="unknown_type", detail="Unknown message type.")

    def _error(self, message: dict[str, Any], *, code: str, detail: str) -> None:
        self.deliver({"type": "error", "sub": message.get("sub"), "code": code, "detail": detail})

    async def _subscribe(self, message: dict[str, Any]) -> None:
        if self.identity is None:  # _handle authenticates first
            return
        sub_id = message.get("sub")
        kind = subscription_kind(str(message.get("kind")))
        since_raw = message.get("since")
        since = parse_event_id(since_raw) if since_raw is not None else None
        if not isinstance(sub_id, str) or not 0 < len(sub_id) <= 64:
            self._error(message, code="invalid", detail="'sub' must be a string id (1-64 chars).")
            return
        if sub_id in self.subscriptions:
            self._error(message, code="duplicate", detail="This subscription id is in use.")
            return
        if kind is None:
            raise RefusedError(CLOSE_NOT_FOUND, "unknown subscription kind")
        if since_raw is not None and since is None:
            self._error(message, code="invalid", detail="'since' must be an event id 'txid:seq'.")
            return
        if len(self.subscriptions) >= limits.MAX_SUBSCRIPTIONS:
            self._error(message, code="too_many_subscriptions", detail="Unsubscribe first.")
            return
        raw_params = message.get("params")
        params: dict[str, Any] = raw_params if isinstance(raw_params, dict) else {}
        # The log position BEFORE the subscription's state is read: nothing committed after it
        # is missed (an entry already reflected in the state comes again as an update).
        start = await tenant_call(self.tenant, log_position)
        try:
            state = await tenant_call(
                self.tenant,
                kind.open,
                user=self.identity.user,
                identity=self.identity,
                params=params,
            )
        except SubscriptionError as error:
            self._error(message, code=error.code, detail=error.detail)
            return
        subscription = Subscription(
            sub_id=sub_id,
            schema=self.tenant.schema_name,
            kind=kind,
            state=state,
            role=self.identity.role,
            sink=self,
            params=params,
        )
        self.subscriptions[sub_id] = subscription
        position = await get_relay().subscribe(
            subscription, tenant=self.tenant, start=start, since=since
        )
        self.deliver({"type": "subscribed", "sub": sub_id, "position": format_position(position)})


def _recheck(
    *,
    identity: Identity,
    subscriptions: list[Subscription],
    fresh_devices: bool,
) -> dict[str, Any]:
    """The re-check, in the tenant's schema: the user as at the handshake, then each
    subscription's access through its kind's own ``recheck`` (state kept) or ``open``; returns
    the fresh states of the latter by subscription id."""
    if fresh_devices and identity.device_id is not None:
        # A revocation's own cache notice may reach this process after the publish: read the
        # device from the database rather than from a cache that may still hold it.
        forget_cached_devices()
    user = identity_recheck(identity=identity)
    states: dict[str, Any] = {}
    for subscription in subscriptions:
        kind, params = subscription.kind, subscription.params
        try:
            if kind.recheck is not None:
                kind.recheck(user=user, identity=identity, params=params)
            else:
                states[subscription.sub_id] = kind.open(user=user, identity=identity, params=params)
        except RefusedError:
            raise RefusedError(CLOSE_FORBIDDEN, "access to a subscription was withdrawn") from None
    return states


class NotFoundConsumer(AsyncWebsocketConsumer):
    """Any other WebSocket path: accepted, then closed 4404 (a browser sees the code)."""

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_NOT_FOUND, reason="no such endpoint")
