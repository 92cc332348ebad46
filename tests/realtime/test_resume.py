"""Resume (issue 18, item 7): a subscription reopened with the last event id it saw receives what
it missed while that id is in the log, then ``subscribed``; nothing twice; below the retained
window, 4409."""

from __future__ import annotations

import datetime as dt
from typing import Any

from accounts.roles import Role
from sync.models import SyncState
from tests.realtime.board import board_params, book, next_start, transition
from tests.realtime.conftest import (
    RealtimeWorld,
    access_token,
    close_code,
    in_schema,
    quiet,
    ready,
    receive,
    receive_about,
    send,
)


def _subscribe(ws: Any, day: dt.date, **resume: str) -> None:
    """Sends the board's subscription (with ``since=``: a resume); the replies are the test's."""
    send(
        ws,
        {
            "type": "subscribe",
            "sub": "s",
            "kind": "appointments",
            "params": board_params(day),
            **resume,
        },
    )


def _position(event_id: str) -> tuple[int, int]:
    txid, seq = event_id.split(":")
    return (int(txid), int(seq))


def _until_events(ws: Any, count: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """``count`` events and the ``subscribed`` acknowledgement. Missed events come before it,
    except those the commit-safe watermark had not passed yet when the subscription reopened:
    they follow it, still as replayed events."""
    events: list[dict[str, Any]] = []
    ack: dict[str, Any] = {}
    while len(events) < count or not ack:
        message = receive(ws)
        if message["type"] == "subscribed":
            ack = message
        else:
            events.append(message)
    return events, ack


def test_a_resumed_subscription_receives_what_it_missed_and_nothing_twice(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a, b = rt.world.a, rt.world.b
    start = next_start()
    token = access_token(a.schema, Role.RECEPTIONIST)
    with ready(rt, a.host, token) as ws:
        _subscribe(ws, start.date())
        assert receive(ws)["type"] == "subscribed"
        first = book(a.schema, starts_at=start)
        seen = receive_about(ws, first)
        assert seen["appointment"]["id"] == first
    # Missed while disconnected: a check-in and a new booking in A, and B's colliding writes.
    transition(a.schema, first, "check_in")
    second = book(a.schema, starts_at=next_start())
    book(b.schema, starts_at=start)
    with ready(rt, a.host, token) as ws:
        _subscribe(ws, start.date(), since=seen["id"])
        replayed, ack = _until_events(ws, 2)
        assert [(m["event"], m["appointment"]["id"]) for m in replayed] == [
            ("appointment.checked_in", first),
            ("appointment.created", second),
        ]
        ids = [_position(m["id"]) for m in replayed]
        assert ids == sorted(set(ids))
        assert ids[0] > _position(seen["id"])
        assert ack["type"] == "subscribed"
        for message in replayed:
            assert message["appointment"]["patient"]["given_name"] == a.marker
        # Live again, and what was replayed does not come a second time.
        third = book(a.schema, starts_at=next_start())
        live = receive_about(ws, third)
        assert live["appointment"]["id"] == third
        assert _position(live["id"]) > ids[-1]
        again = [
            m for m in quiet(ws, 1.0) if _position(m.get("id", "0:0")) <= _position(live["id"])
        ]
        assert again == []


def test_resuming_from_the_latest_position_replays_nothing(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a = rt.world.a
    day = next_start().date()
    token = access_token(a.schema, Role.RECEPTIONIST)
    with ready(rt, a.host, token) as ws:
        _subscribe(ws, day)
        position = receive(ws)["position"]
    with ready(rt, a.host, token) as ws:
        _subscribe(ws, day, since=position)
        assert receive(ws)["type"] == "subscribed"


def test_a_resume_point_below_the_retained_window_is_4409(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a = rt.world.a

    def set_window(txid: int) -> None:
        SyncState.objects.update_or_create(pk=1, defaults={"min_retained_txid": txid})

    in_schema(a.schema, lambda: set_window(10**15))
    try:
        with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
            _subscribe(ws, next_start().date(), since="5:1")
            assert close_code(ws) == 4409
    finally:
        in_schema(a.schema, lambda: set_window(0))


def test_a_malformed_resume_point_is_an_error(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
        _subscribe(ws, next_start().date(), since="yesterday")
        reply = receive(ws)
        assert reply["type"] == "error"
        assert reply["code"] == "invalid"
