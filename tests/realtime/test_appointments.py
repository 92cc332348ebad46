"""The ``appointments`` subscription against a real uvicorn, with the colliding tenants rt-a and
rt-b (same facility, patient and user ids, same emails): events of one tenant never reach the
other; only containers the user may see can be subscribed; the role's representation (no phone);
created / rescheduled / moved out / checked in / cancelled."""

from __future__ import annotations

import datetime as dt

import orjson

from accounts.roles import Role
from tests.realtime.board import board_params, book, move, next_start, transition
from tests.realtime.conftest import (
    RealtimeWorld,
    access_token,
    close_code,
    quiet,
    ready,
    receive,
    receive_about,
    send,
    subscribe,
)
from tests.security.world import B_ONLY, SHARED

FACILITY = str(SHARED["clinical.facility"])


def test_an_event_reaches_its_tenants_board_only(rt: RealtimeWorld, committed_db: None) -> None:
    a, b = rt.world.a, rt.world.b
    start = next_start()
    with (
        ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws_a,
        ready(rt, b.host, access_token(b.schema, Role.RECEPTIONIST)) as ws_b,
    ):
        ack_a = subscribe(ws_a, "board", "appointments", params=board_params(start.date()))
        ack_b = subscribe(ws_b, "board", "appointments", params=board_params(start.date()))
        assert ack_a["type"] == ack_b["type"] == "subscribed"

        appointment = book(a.schema, starts_at=start)
        event = receive_about(ws_a, appointment)
        assert event["type"] == "event"
        assert event["sub"] == "board"
        assert event["event"] == "appointment.created"
        assert event["appointment"]["id"] == appointment
        assert event["appointment"]["patient"]["given_name"] == a.marker
        txid, seq = event["id"].split(":")
        assert txid.isdigit()
        assert seq.isdigit()

        transition(a.schema, appointment, "check_in")
        checked_in = receive_about(ws_a, appointment)
        assert checked_in["event"] == "appointment.checked_in"
        assert checked_in["appointment"]["status"] == "checked_in"
        assert tuple(map(int, checked_in["id"].split(":"))) > (int(txid), int(seq))
        # B's board (same facility id, same day) saw nothing of A's writes.
        # (Only B's own earlier bookings could arrive there, never A's marker.)
        assert not [m for m in quiet(ws_b) if a.marker in orjson.dumps(m).decode()]

        # And B's own write reaches B only.
        b_appointment = book(b.schema, starts_at=start)
        b_event = receive_about(ws_b, b_appointment)
        assert b_event["appointment"]["id"] == b_appointment
        assert b.marker in orjson.dumps(b_event).decode()
        assert a.marker not in orjson.dumps(b_event).decode()
        leaked = [
            m
            for m in quiet(ws_a, 1.0)
            if b.marker in orjson.dumps(m).decode() or b_appointment in orjson.dumps(m).decode()
        ]
        assert leaked == []


def test_rescheduled_moved_out_and_cancelled(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    start = next_start()
    appointment = book(a.schema, starts_at=start)
    with ready(rt, a.host, access_token(a.schema, Role.NURSE)) as ws:
        assert subscribe(ws, "s", "appointments", params=board_params(start.date()))["type"] == (
            "subscribed"
        )
        move(a.schema, appointment, starts_at=start + dt.timedelta(minutes=5))
        assert receive_about(ws, appointment)["event"] == "appointment.rescheduled"
        # To another day: out of this board's range, announced by id only.
        move(a.schema, appointment, starts_at=start + dt.timedelta(days=40))
        moved = receive_about(ws, appointment)
        assert moved["event"] == "appointment.moved_out"
        assert moved["appointment"] == {"id": appointment}
        # Changes outside the range are not this board's business.
        transition(a.schema, appointment, "cancel")
        about = [m for m in quiet(ws, 1.0) if m.get("appointment", {}).get("id") == appointment]
        assert about == []

    second = book(a.schema, starts_at=next_start())
    with ready(rt, a.host, access_token(a.schema, Role.NURSE)) as ws:
        day = next_start().date()
        subscribe(ws, "s", "appointments", params=board_params(day - dt.timedelta(days=1), days=3))
        transition(a.schema, second, "cancel")
        assert receive_about(ws, second)["event"] == "appointment.cancelled"


def test_a_viewer_never_gets_a_phone_number(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    start = next_start()
    with ready(rt, a.host, access_token(a.schema, Role.VIEWER)) as ws:
        assert subscribe(ws, "s", "appointments", params=board_params(start.date()))["type"] == (
            "subscribed"
        )
        booked = book(a.schema, starts_at=start)
        raw = orjson.dumps(receive_about(ws, booked)).decode()
    assert "phone" not in raw
    assert "+4915112345678" not in raw


def test_only_visible_facilities_can_be_subscribed(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    day = next_start().date()
    # Facility #2 exists in A but the receptionist holds no grant on it.
    other = {**board_params(day), "facility": str(SHARED["clinical.facility#2"])}
    b_only = {**board_params(day), "facility": str(B_ONLY["clinical.facility"])}
    for params in (other, b_only):
        with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
            send(ws, {"type": "subscribe", "sub": "s", "kind": "appointments", "params": params})
            assert close_code(ws) == 4404
    # A farm role has no appointments at all.
    with ready(rt, a.host, access_token(a.schema, Role.AGRONOMIST)) as ws:
        send(
            ws,
            {"type": "subscribe", "sub": "s", "kind": "appointments", "params": board_params(day)},
        )
        assert close_code(ws) == 4404
    with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
        send(ws, {"type": "subscribe", "sub": "s", "kind": "invoices", "params": {}})
        assert close_code(ws) == 4404


def test_bad_parameters_are_an_error_message_and_the_socket_stays(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a = rt.world.a
    with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
        for params in (
            {"facility": "not-a-uuid", "from": "2031-05-01"},
            {"facility": FACILITY, "from": "May 1st"},
            {"facility": FACILITY, "from": "2031-05-01", "to": "2031-07-01"},
            {"facility": FACILITY, "from": "2031-05-02", "to": "2031-05-01"},
        ):
            reply = subscribe(ws, "s", "appointments", params=params)
            assert reply["type"] == "error"
            assert reply["code"] == "invalid"
        send(ws, {"type": "ping"})
        assert receive(ws) == {"type": "pong"}
