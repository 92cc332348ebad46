"""The ``reminders`` subscription (issue 18, item 4) and bookkeeping-only writes (item 5), on a
real uvicorn with the colliding tenants rt-a / rt-b: a tenant admin receives reminder delivery
states of their own tenant only (the same reminder id exists in both), without the phone number
or the message body; a write touching only bookkeeping columns (a reminder's ``claimed_at``, an
appointment's ``reminder_sent_at``) makes no event; anyone but a tenant admin gets 4404."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import orjson
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from websockets.sync.client import ClientConnection

from accounts.roles import Role
from clinical.models import Appointment, ReminderMessage, ReminderState
from clinical.realtime import RELOAD_THRESHOLD, ReminderFeed, reminders_load, reminders_match
from realtime.registry import Entry
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
    subscribe,
)
from tests.security.world import SHARED

PHONE = "+15550001234"
BODY = "Secret reminder body"


def _reminder_about(ws: ClientConnection, reminder_id: str) -> dict[str, Any]:
    """The next reminders event about ``reminder_id`` (a booking may add its own reminders)."""
    while True:
        message = receive(ws)
        if message.get("type") != "event" or message["reminder"]["id"] == reminder_id:
            return message


def _create_reminder(schema: str, *, reminder_id: str, appointment_id: str) -> None:
    due = timezone.now() + dt.timedelta(days=1)
    in_schema(
        schema,
        lambda: ReminderMessage.objects.create(
            id=reminder_id,
            appointment_id=appointment_id,
            kind="realtime-test",
            due_at=due,
            send_after=due,
            phone=PHONE,
            body=BODY,
        ),
    )


def _update_reminder(schema: str, reminder_id: str, **values: Any) -> None:
    in_schema(schema, lambda: ReminderMessage.objects.filter(pk=reminder_id).update(**values))


def test_a_tenant_admin_gets_delivery_states_of_its_tenant_only(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a, b = rt.world.a, rt.world.b
    reminder_id = str(uuid.uuid4())
    start = next_start()
    appointment_a = book(a.schema, starts_at=start)
    appointment_b = book(b.schema, starts_at=start)
    with (
        ready(rt, a.host, access_token(a.schema, Role.TENANT_ADMIN)) as ws_a,
        ready(rt, b.host, access_token(b.schema, Role.TENANT_ADMIN)) as ws_b,
    ):
        assert subscribe(ws_a, "r", "reminders")["type"] == "subscribed"
        assert subscribe(ws_b, "r", "reminders")["type"] == "subscribed"

        _create_reminder(a.schema, reminder_id=reminder_id, appointment_id=appointment_a)
        created = _reminder_about(ws_a, reminder_id)
        assert created["event"] == "reminder.pending"
        assert created["reminder"]["appointment"] == appointment_a
        assert created["reminder"]["facility"] == str(SHARED["clinical.facility"])
        text = orjson.dumps(created).decode()
        assert PHONE not in text
        assert BODY not in text
        assert "phone" not in created["reminder"]
        assert "body" not in created["reminder"]

        # Bookkeeping only (the claim's timestamp): no event. Then a delivery state: one event,
        # and it is the next one about this reminder.
        _update_reminder(a.schema, reminder_id, claimed_at=timezone.now())
        _update_reminder(a.schema, reminder_id, state=ReminderState.SENT, sent_at=timezone.now())
        sent = _reminder_about(ws_a, reminder_id)
        assert sent["event"] == "reminder.sent"
        assert sent["reminder"]["state"] == "sent"

        # B's admin (same user id, same email) saw nothing of A's reminder; then B's own
        # reminder with the very same id reaches B only.
        assert not [m for m in quiet(ws_b) if reminder_id in orjson.dumps(m).decode()]
        _create_reminder(b.schema, reminder_id=reminder_id, appointment_id=appointment_b)
        assert _reminder_about(ws_b, reminder_id)["reminder"]["appointment"] == appointment_b
        assert not [m for m in quiet(ws_a, 1.0) if appointment_b in orjson.dumps(m).decode()]


def test_reminders_are_for_tenant_admins_only(rt: RealtimeWorld, committed_db: None) -> None:
    a = rt.world.a
    for role in (Role.RECEPTIONIST, Role.CLINICIAN):
        with ready(rt, a.host, access_token(a.schema, role)) as ws:
            send(ws, {"type": "subscribe", "sub": "r", "kind": "reminders"})
            assert close_code(ws) == 4404


def test_a_bookkeeping_only_appointment_write_makes_no_board_event(
    rt: RealtimeWorld, committed_db: None
) -> None:
    a = rt.world.a
    start = next_start()
    params = board_params(start.date())
    appointment = book(a.schema, starts_at=start)
    with ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as ws:
        assert subscribe(ws, "board", "appointments", params=params)["type"] == "subscribed"
        in_schema(
            a.schema,
            lambda: Appointment.objects.filter(pk=appointment).update(
                reminder_sent_at=timezone.now()
            ),
        )
        transition(a.schema, appointment, "check_in")
        # The check-in is the next event about it: the reminder timestamp made none.
        assert receive_about(ws, appointment)["event"] == "appointment.checked_in"


def test_a_batch_of_reminders_is_read_with_one_query(rt: RealtimeWorld, committed_db: None) -> None:
    """No per-event query: the kind's ``load`` reads a batch of 1 or 20 reminders (with their
    appointments) in one query; the relay calls it once per batch, whatever the sockets
    (tests/realtime/test_fanout_queries.py proves that half for the board)."""
    a = rt.world.a
    appointment = book(a.schema, starts_at=next_start())
    ids = [str(uuid.uuid4()) for _ in range(20)]
    for reminder_id in ids:
        _create_reminder(a.schema, reminder_id=reminder_id, appointment_id=appointment)

    def queries_for(batch: list[str]) -> int:
        entries = [Entry(1, n, "reminders", rid, "U", ()) for n, rid in enumerate(batch)]
        with CaptureQueriesContext(connection) as captured:
            loaded = reminders_load(entries=entries, roles=frozenset({Role.TENANT_ADMIN}))
        assert set(loaded) == set(batch)
        assert all("phone" not in row and "body" not in row for row in loaded.values())
        # django-tenants' SET search_path is not a read.
        return len([q for q in captured.captured_queries if q["sql"].startswith("SELECT")])

    try:
        one = in_schema(a.schema, lambda: queries_for(ids[:1]))
        assert in_schema(a.schema, lambda: queries_for(ids)) == one
        assert one == 1
    finally:
        in_schema(a.schema, lambda: ReminderMessage.objects.filter(pk__in=ids).delete())


def _removed(n: int) -> list[Entry]:
    return [Entry(100, n, "reminders", f"r{n}", "delete", ()) for n in range(n)]


def test_a_reminder_changed_twice_in_a_batch_makes_one_event_at_its_last_change() -> None:
    entries = [
        Entry(100, 1, "reminders", "r1", "update", ()),
        Entry(100, 2, "reminders", "r2", "delete", ()),
        Entry(100, 3, "reminders", "r1", "delete", ()),
    ]
    events = reminders_match(
        ReminderFeed(role=Role.TENANT_ADMIN), {}, entries, role="", resumed=False
    )
    assert [(event_id, m["reminder"]["id"]) for event_id, m in events] == [
        ("100:2", "r2"),
        ("100:3", "r1"),
    ]


def test_more_reminder_events_than_the_threshold_become_one_reload() -> None:
    feed = ReminderFeed(role=Role.TENANT_ADMIN)
    at_threshold = reminders_match(feed, {}, _removed(RELOAD_THRESHOLD), role="", resumed=False)
    assert len(at_threshold) == RELOAD_THRESHOLD
    over = _removed(RELOAD_THRESHOLD + 1)
    events = reminders_match(feed, {}, over, role="", resumed=False)
    assert events == [(over[-1].event_id, {"event": "reminders.reload"})]
