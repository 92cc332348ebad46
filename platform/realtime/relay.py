"""The per-process relay: one feed per tenant with sockets here, reading the change log and fanning
events out in memory to this process's subscriptions.

PostgreSQL NOTIFY (``listener.py``) only wakes a feed; the events come from the log, read by
``(txid, seq)`` below the commit-safe watermark (``log.py``), so a lost notification only delays
(a safety tick re-reads every ``SAFETY_TICK`` seconds) and nothing is ever sent before commit.
Each batch is loaded ONCE per subscription kind (``SubscriptionKind.load``), whatever the number
of sockets; matching each subscription is in memory.

A feed's lock orders everything for its tenant: a batch is delivered to every subscription
registered before it, and a subscription that resumes from an event id is caught up from the log
to the feed's position, then registered, under the same lock — no gap, no event twice. The
subscriptions queued for the lock are registered together (one catch-up read and load for all).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from realtime.db import expected_schema, tenant_call
from realtime.handshake import CLOSE_RESUME, RefusedError
from realtime.log import (
    LogRead,
    Position,
    log_last_written,
    log_read,
    log_read_between,
    log_window_start,
)
from realtime.registry import Entry, SubscriptionKind

logger = logging.getLogger(__name__)

BATCH = 500
# A resume further behind than this many entries reloads instead (4409).
MAX_RESUME_ENTRIES = 5000
SAFETY_TICK = 5.0
PENDING_RETRY = 0.2


class Sink(Protocol):
    def deliver(self, message: dict[str, Any]) -> None: ...


@dataclass(eq=False)
class Subscription:
    sub_id: str
    schema: str
    kind: SubscriptionKind
    state: Any
    role: str
    sink: Sink
    # What the client subscribed with: a re-check opens the kind again with them.
    params: dict[str, Any] = field(default_factory=dict)
    # Entries at or below this position are never delivered (a resume from another process's
    # position, ahead of this feed).
    floor: Position = (0, 0)
    # A resumed subscription: entries up to this position were written before it reopened, so
    # they are replayed (the kind cannot know what the client holds), even those delivered after
    # ``subscribed`` because the watermark had not passed them yet.
    replay_until: Position | None = None
    closed: bool = False


@dataclass(eq=False)
class Joining:
    """A subscription waiting for its feed's lock, and the position it will receive events after
    (or the refusal) once registered."""

    subscription: Subscription
    start: Position
    since: Position | None
    done: asyncio.Future[Position]


@dataclass(eq=False)
class Feed:
    tenant: Any
    position: Position | None = None
    subscriptions: set[Subscription] = field(default_factory=set)
    joining: list[Joining] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


def parse_event_id(raw: Any) -> Position | None:
    if not isinstance(raw, str) or raw.count(":") != 1:
        return None
    txid, seq = raw.split(":")
    if not (txid.isdigit() and seq.isdigit()) or len(raw) > 40:
        return None
    return (int(txid), int(seq))


def format_position(position: Position) -> str:
    return f"{position[0]}:{position[1]}"


class Relay:
    def __init__(self) -> None:
        self.feeds: dict[str, Feed] = {}

    # --- subscriptions (called by consumers) ----------------------------------------------------

    async def subscribe(
        self,
        subscription: Subscription,
        *,
        tenant: Any,
        start: Position,
        since: Position | None,
    ) -> Position:
        """Registers ``subscription``, whose state was read after the log position ``start``.
        With ``since`` (a resume), it first receives what it missed after that event id;
        without, everything after ``start``. Returns the position it receives events after.

        Subscriptions that queue for the same feed while its lock is held join together: whoever
        takes the lock first registers every one waiting, with one log read and one load per
        kind for all their catch-ups (a reconnect storm, where a thousand boards resume from
        nearby positions, costs a few queries per batch rather than per board)."""
        schema = tenant.schema_name
        loop = asyncio.get_running_loop()
        while True:
            feed = self.feeds.get(schema)
            if feed is None:
                feed = self.feeds[schema] = Feed(tenant=tenant)
            joining = Joining(subscription, start=start, since=since, done=loop.create_future())
            feed.joining.append(joining)
            async with feed.lock:
                # A feed that ended (no subscriptions) while this call waited for its lock is
                # out of the map: start over with the current one.
                if not joining.done.done() and self.feeds.get(schema) is feed:
                    await self._register_joining(feed)
            if joining.done.done():
                return joining.done.result()

    async def _register_joining(self, feed: Feed) -> None:
        """Under the feed's lock: registers every subscription waiting to join ``feed``."""
        batch = [joining for joining in feed.joining if not joining.done.done()]
        feed.joining = []
        try:
            await self._register(feed, [j for j in batch if not j.subscription.closed])
        except Exception as exc:
            for joining in batch:
                if not joining.done.done():
                    joining.done.set_exception(exc)
        for joining in batch:
            if not joining.done.done():  # closed while waiting: nothing to register
                joining.done.set_result(joining.start)

    async def _register(self, feed: Feed, batch: list[Joining]) -> None:
        tenant = feed.tenant
        if not batch:
            return
        if feed.position is None:
            feed.position = min(joining.start for joining in batch)
        window, last_written = 0, None
        if any(joining.since is not None for joining in batch):
            window = await tenant_call(tenant, log_window_start)
            # What was written before these clients came back is replayed to them even if the
            # feed delivers it after they joined (``Subscription.replay_until``).
            last_written = await tenant_call(tenant, log_last_written)
        joined: list[Joining] = []
        for joining in batch:
            subscription, since = joining.subscription, joining.since
            if since is not None:
                if since[0] < window:
                    joining.done.set_exception(
                        RefusedError(CLOSE_RESUME, "resume point is no longer in the log: reload")
                    )
                    continue
                subscription.replay_until = last_written
            subscription.floor = since if since is not None else joining.start
            joined.append(joining)
        behind = [j.subscription for j in joined if j.subscription.floor < feed.position]
        if behind:
            for refused in await self._catch_up(feed, behind, upto=feed.position):
                next(j for j in joined if j.subscription is refused).done.set_exception(
                    RefusedError(CLOSE_RESUME, "too much missed: reload")
                )
        for joining in joined:
            if not joining.done.done():
                feed.subscriptions.add(joining.subscription)
                joining.done.set_result(max(joining.subscription.floor, feed.position))
        if feed.subscriptions and (feed.task is None or feed.task.done()):
            feed.task = asyncio.get_running_loop().create_task(self._run(feed))

    def unsubscribe(self, subscription: Subscription) -> None:
        subscription.closed = True
        feed = self.feeds.get(subscription.schema)
        if feed is not None:
            feed.subscriptions.discard(subscription)

    def wake(self, schema: str) -> None:
        feed = self.feeds.get(schema)
        if feed is not None:
            feed.wakeup.set()

    def wake_all(self) -> None:
        for feed in self.feeds.values():
            feed.wakeup.set()

    # --- the feed -------------------------------------------------------------------------------

    async def _catch_up(
        self, feed: Feed, subscriptions: list[Subscription], *, upto: Position
    ) -> list[Subscription]:
        """Entries after each subscription's floor up to the feed's position, to those
        subscriptions alone: one read from the lowest floor, one load per kind. Returns the
        subscriptions that missed more than ``MAX_RESUME_ENTRIES`` (refused: reload)."""
        lowest = min(subscription.floor for subscription in subscriptions)
        entries, truncated = await tenant_call(
            feed.tenant, log_read_between, after=lowest, upto=upto, limit=MAX_RESUME_ENTRIES
        )
        refused: list[Subscription] = []
        if truncated:
            oldest: Position = (entries[0].txid, entries[0].seq)
            refused = [s for s in subscriptions if s.floor < oldest]
            subscriptions = [s for s in subscriptions if s.floor >= oldest]
        # A board loads its facility's rows, not the whole tenant's: only the entries some
        # catching-up subscription will look at.
        wanted: set[Position] = set()
        for subscription in subscriptions:
            relevant = subscription.kind.relevant
            wanted.update(
                (entry.txid, entry.seq)
                for entry in entries
                if (entry.txid, entry.seq) > subscription.floor
                and (relevant is None or relevant(subscription.state, entry))
            )
        missed = [entry for entry in entries if (entry.txid, entry.seq) in wanted]
        if missed and subscriptions:
            # Replayed or not: Subscription.replay_until decides, entry by entry.
            await self._deliver(feed, missed, subscriptions)
        return refused

    async def _run(self, feed: Feed) -> None:
        expected_schema.set(feed.tenant.schema_name)
        delay: float | None = None
        try:
            while True:
                if delay is None:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(feed.wakeup.wait(), timeout=SAFETY_TICK)
                elif delay > 0:
                    await asyncio.sleep(delay)
                feed.wakeup.clear()
                async with feed.lock:
                    if not feed.subscriptions:
                        self.feeds.pop(feed.tenant.schema_name, None)
                        return
                    delay = await self._step(feed)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A database error: the feed starts again at the next subscription or wake-up; its
            # sockets keep their position (nothing was delivered past it).
            logger.exception("realtime feed of %s failed", feed.tenant.schema_name)
            await asyncio.sleep(1)
            feed.task = None
            if feed.subscriptions:
                feed.task = asyncio.get_running_loop().create_task(self._run(feed))

    async def _step(self, feed: Feed) -> float | None:
        if feed.position is None:
            return None
        read: LogRead = await tenant_call(feed.tenant, log_read, after=feed.position, limit=BATCH)
        if read.entries:
            await self._deliver(feed, read.entries, list(feed.subscriptions))
            last = read.entries[-1]
            feed.position = (last.txid, last.seq)
        if read.more:
            return 0
        return PENDING_RETRY if read.pending else None

    async def _deliver(
        self, feed: Feed, entries: list[Entry], subscriptions: Iterable[Subscription]
    ) -> None:
        """``entries`` (in log order) to ``subscriptions``: one load per kind, then each
        subscription's part in memory (the hot path: nothing here is per entry per socket)."""
        by_kind: dict[str, list[Subscription]] = defaultdict(list)
        for subscription in subscriptions:
            if not subscription.closed:
                by_kind[subscription.kind.name].append(subscription)
        for members in by_kind.values():
            kind = members[0].kind
            relevant = [e for e in entries if kind.tables is None or e.tbl in kind.tables]
            if not relevant:
                continue
            # Sorted as the log is: each subscription's part is found by bisection.
            positions = [(e.txid, e.seq) for e in relevant]
            roles = frozenset(member.role for member in members)
            batch = await tenant_call(feed.tenant, kind.load, entries=relevant, roles=roles)
            for member in members:
                first = bisect_right(positions, member.floor)
                if first == len(positions) or member.closed:
                    continue
                # Up to ``replay_until`` the entries are replayed (resumed), after it live.
                until = member.replay_until
                split = first if until is None else max(first, bisect_right(positions, until))
                for part, resumed in ((relevant[first:split], True), (relevant[split:], False)):
                    if not part:
                        continue
                    for event_id, message in kind.match(
                        member.state, batch, part, role=member.role, resumed=resumed
                    ):
                        member.sink.deliver(
                            {"type": "event", "id": event_id, "sub": member.sub_id, **message}
                        )


_relay: Relay | None = None


def get_relay() -> Relay:
    """This process's relay (one per ASGI process, like its LISTEN connection)."""
    global _relay
    if _relay is None:
        _relay = Relay()
        from realtime.listener import start_listener

        start_listener(_relay)
    return _relay
