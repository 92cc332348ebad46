"""The commit-safe watermark is per database: a transaction left open in ANOTHER database on the
same server (a migration, a ``CREATE DATABASE … TEMPLATE``, a report) no longer holds back every
tenant's pulls and real-time events, while one in this database still does (issue 18)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection, transaction

from sync.cursor import watermark_now

SETTLE_SECONDS = 10.0


@pytest.fixture(autouse=True)
def committed(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Outside the test transaction: each write below commits (it only takes an id, it stores
    nothing), as the watermark sees real transactions."""
    with django_db_blocker.unblock():
        yield
        connection.close()


def _connect(dbname: str) -> psycopg.Connection:
    db = connection.settings_dict
    return psycopg.connect(
        dbname=dbname,
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=str(db["PORT"]) if db.get("PORT") else None,
    )


@pytest.fixture
def holder() -> Iterator[dict[str, psycopg.Connection]]:
    """Open transactions that have taken an id: one in this database, one in another."""
    here = _connect(connection.settings_dict["NAME"])
    elsewhere = _connect("postgres")
    try:
        yield {"here": here, "elsewhere": elsewhere}
    finally:
        for held in (here, elsewhere):
            held.rollback()
            held.close()


def _take_id(held: psycopg.Connection) -> int:
    row = held.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()
    assert row is not None
    return int(row[0])


def _settled_watermark(*, past: int, seconds: float = SETTLE_SECONDS) -> int:
    """The watermark once it has passed ``past``, read again until then (a few seconds at most).

    Another database's transaction that was running when a snapshot was taken but ended before
    ``pg_stat_activity`` was read cannot be proved foreign and holds that one read back (the rule
    errs towards waiting); the next read's snapshot no longer has it. On a server shared with
    other test runs such short transactions come and go all the time."""
    deadline = time.monotonic() + seconds
    while True:
        watermark = watermark_now()
        if watermark > past or time.monotonic() > deadline:
            return watermark
        time.sleep(0.02)


def _committed_write() -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        return int(cursor.fetchone()[0])


def test_a_transaction_in_another_database_does_not_hold_the_watermark(
    holder: dict[str, psycopg.Connection],
) -> None:
    other = _take_id(holder["elsewhere"])
    written = _committed_write()
    assert written > other
    # The other database's transaction is still open (and older): only this database counts.
    assert _settled_watermark(past=written) > written


def test_a_transaction_in_this_database_holds_the_watermark_until_it_ends(
    holder: dict[str, psycopg.Connection],
) -> None:
    mine = _take_id(holder["here"])
    written = _committed_write()
    # Held at this database's open transaction: it never passes it while it is open.
    assert _settled_watermark(past=mine, seconds=2.0) == mine
    holder["here"].commit()
    assert _settled_watermark(past=written) > written


def test_the_own_transaction_does_not_hold_its_own_watermark() -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        own = int(cursor.fetchone()[0])
        assert _settled_watermark(past=own) > own
