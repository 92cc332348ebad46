"""The wake-up (issue 18, item 5): the change log's AFTER INSERT statement trigger notifies
``verdant_realtime`` with the writing tenant's schema name, on commit, in every provisioned
tenant (the trigger is cloned from the template with the schema)."""

from __future__ import annotations

import time

import psycopg
from django.db import connection

from realtime.listener import CHANNEL, conninfo
from tests.realtime.board import book, next_start
from tests.realtime.conftest import RealtimeWorld


def _notifications(listener: psycopg.Connection, seconds: float) -> list[str]:
    payloads: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for notification in listener.notifies(timeout=0.2, stop_after=1):
            payloads.append(notification.payload)
    return payloads


def test_a_committed_write_notifies_its_schema_name(rt: RealtimeWorld, committed_db: None) -> None:
    a, b = rt.world.a, rt.world.b
    assert connection.settings_dict["NAME"].startswith("test_")
    with psycopg.connect(conninfo(), autocommit=True) as listener:
        listener.execute(f"LISTEN {CHANNEL}")
        book(a.schema, starts_at=next_start())
        book(b.schema, starts_at=next_start())
        payloads = _notifications(listener, 3.0)
        application = listener.execute("SELECT current_setting('application_name')").fetchone()
    assert a.schema in payloads
    assert b.schema in payloads
    # One wake-up per statement writing the log, carrying nothing but the schema name.
    assert set(payloads) <= {a.schema, b.schema}
    assert application == ("realtime",)
