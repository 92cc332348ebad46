"""No per-event database query per connection (issue 18, item 2): a batch of change-log entries
costs the same queries whether 1 or 40 sockets are subscribed to the board — the relay loads the
batch once per subscription kind and matches each subscription in memory.

In-process, on the committed rt-a tenant: the relay delivers a committed booking's log entries
through Channels' shared database thread, whose queries an ``execute_wrapper`` counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connection, connections

from accounts.models import User
from accounts.roles import Role
from clinical.realtime import board_open
from realtime.db import public_call, tenant_call
from realtime.handshake import tenant_for_host
from realtime.log import log_last_written, log_position
from realtime.registry import Entry, subscription_kind
from realtime.relay import Feed, Relay, Subscription
from tests.realtime.board import DAY, board_params, book, next_start
from tests.realtime.conftest import RealtimeWorld, in_schema
from tests.security.world import USER_IDS


class Sink:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def deliver(self, message: dict[str, Any]) -> None:
        self.messages.append(message)


class Counter:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.count += 1
        return execute(sql, params, many, context)


@pytest.fixture
def unblocked(django_db_blocker: pytest.FixtureRequest) -> Iterator[None]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield
        asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())
        connections.close_all()


def _open(*, params: dict[str, str]) -> Any:
    user = User.objects.get(pk=USER_IDS[Role.RECEPTIONIST])
    return board_open(user=user, identity=None, params=params)


async def _board(tenant: Any, sub_id: str, sink: Sink, *, params: dict[str, str]) -> Subscription:
    """A receptionist's board subscription, opened as the consumer opens it."""
    kind = subscription_kind("appointments")
    assert kind is not None
    return Subscription(
        sub_id=sub_id,
        schema=tenant.schema_name,
        kind=kind,
        state=await tenant_call(tenant, _open, params=params),
        role=Role.RECEPTIONIST,
        sink=sink,
        params=params,
    )


def _queries_for_one_booking(rt: RealtimeWorld, sockets: int) -> tuple[int, list[Sink]]:
    """The queries the relay runs to deliver one booking's change-log entries to ``sockets``
    board subscriptions (delivery itself, not the log read, whose wait for the commit-safe
    watermark is not what this counts)."""
    a = rt.world.a
    start = next_start()
    params = board_params(start.date())
    counter = Counter()
    relay = Relay()
    sinks = [Sink() for _ in range(sockets)]

    async def subscribe_all() -> tuple[Any, list[Subscription]]:
        tenant = await public_call(tenant_for_host, hostname=a.host)
        subscriptions = [
            await _board(tenant, f"s{n}", sink, params=params) for n, sink in enumerate(sinks)
        ]
        return tenant, subscriptions

    tenant, subscriptions = asyncio.run(subscribe_all())
    since = in_schema(a.schema, log_last_written)
    book(a.schema, starts_at=start)
    entries = in_schema(a.schema, lambda: _entries_after(since))
    assert entries

    async def deliver() -> None:
        # Evaluated on the database thread: connections are per thread.
        await database_sync_to_async(lambda: connection.execute_wrappers.append(counter))()
        try:
            await relay._deliver(Feed(tenant=tenant), entries, subscriptions)
        finally:
            await database_sync_to_async(lambda: connection.execute_wrappers.remove(counter))()

    asyncio.run(deliver())
    return counter.count, sinks


def _entries_after(position: tuple[int, int]) -> list[Entry]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT txid::text::bigint, seq, tbl, row_id::text, op, scope_ids::text[] "
            "FROM sync_change WHERE (txid, seq) > (%s::text::xid8, %s) ORDER BY txid, seq",
            [str(position[0]), position[1]],
        )
        return [Entry(t, s, tbl, row, op, tuple(scopes)) for t, s, tbl, row, op, scopes in cursor]


def test_the_relay_queries_the_same_for_1_and_40_sockets(
    rt: RealtimeWorld, unblocked: None
) -> None:
    one, sinks_one = _queries_for_one_booking(rt, 1)
    many, sinks_many = _queries_for_one_booking(rt, 40)
    for sink in [*sinks_one, *sinks_many]:
        assert [m["event"] for m in sink.messages] == ["appointment.created"]
    assert one == many, (one, many)
    assert 1 <= one <= 2, one


def _queries_for_resumes(rt: RealtimeWorld, boards: int) -> tuple[int, list[Sink], Sink]:
    """``boards`` board subscriptions resume together (a reconnect storm: they queue for the
    feed's lock while it is held) from a position before one booking; the queries their
    registration and catch-up cost, their sinks, and the sink of the board that was live."""
    a = rt.world.a
    start = next_start()
    params = board_params(start.date())
    counter = Counter()
    relay = Relay()
    live_sink, sinks = Sink(), [Sink() for _ in range(boards)]
    since = in_schema(a.schema, log_last_written)
    book(a.schema, starts_at=start)

    async def storm() -> None:
        tenant = await public_call(tenant_for_host, hostname=a.host)

        # A live board first: the feed stands after the booking (the watermark has passed it).
        now = await tenant_call(tenant, log_position)
        assert now > since
        await relay.subscribe(
            await _board(tenant, "live", live_sink, params=params),
            tenant=tenant,
            start=now,
            since=None,
        )
        resuming = [
            await _board(tenant, f"r{n}", sink, params=params) for n, sink in enumerate(sinks)
        ]
        feed = relay.feeds[tenant.schema_name]
        await database_sync_to_async(lambda: connection.execute_wrappers.append(counter))()
        try:
            async with feed.lock:
                tasks = [
                    asyncio.create_task(relay.subscribe(s, tenant=tenant, start=now, since=since))
                    for s in resuming
                ]
                while len(feed.joining) < boards:
                    await asyncio.sleep(0)
            positions = await asyncio.gather(*tasks)
        finally:
            await database_sync_to_async(lambda: connection.execute_wrappers.remove(counter))()
        assert positions == [now] * boards

    asyncio.run(storm())
    return counter.count, sinks, live_sink


def test_boards_resuming_together_share_one_catch_up(rt: RealtimeWorld, unblocked: None) -> None:
    one, sinks_one, live_one = _queries_for_resumes(rt, 1)
    many, sinks_many, live_many = _queries_for_resumes(rt, 30)
    for sink in [*sinks_one, *sinks_many]:
        assert [m["event"] for m in sink.messages] == ["appointment.created"], sink.messages
    # The live board saw nothing of the catch-ups (the booking was before it subscribed).
    assert live_one.messages == live_many.messages == []
    assert one == many, (one, many)


def test_a_boards_recheck_checks_access_without_reading_its_rows(
    rt: RealtimeWorld, unblocked: None
) -> None:
    """The sweep re-checks every socket every minute on the process's one database thread: a
    board keeps its memory of its rows, so its re-check is the facility access alone."""
    a = rt.world.a
    # No booking of its own: the other tests' one-day boards count on the order of next_start().
    params = board_params(DAY, days=31)
    kind = subscription_kind("appointments")
    assert kind is not None
    assert kind.recheck is not None
    recheck = kind.recheck

    def run() -> list[str]:
        user = User.objects.get(pk=USER_IDS[Role.RECEPTIONIST])
        _open(params=params)  # as an open socket: it subscribed first (warm caches)
        sqls: list[str] = []

        def capture(execute: Any, sql: str, args: Any, many: bool, context: Any) -> Any:
            sqls.append(sql)
            return execute(sql, args, many, context)

        with connection.execute_wrapper(capture):
            recheck(user=user, identity=None, params=params)
        return sqls

    sqls = in_schema(a.schema, run)
    assert len(sqls) == 1, sqls
    assert "clinical_appointment" not in sqls[0]
