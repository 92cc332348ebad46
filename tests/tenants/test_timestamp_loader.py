"""timestamptz values come back exactly as Django's own loader would give them (aware, UTC),
through psycopg's C loader."""

import datetime

import pytest
from django.db import DataError, connection
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from tenants.postgresql_backend.timestamps import UtcTimestamptzLoader

pytestmark = pytest.mark.django_db

TIMESTAMPTZ_OID = 1184


def _loaded(sql: str) -> datetime.datetime:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        value: datetime.datetime = cursor.fetchone()[0]
    return value


def test_connections_load_timestamps_with_the_fast_loader() -> None:
    connection.ensure_connection()
    loader = connection.connection.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT)
    assert loader is UtcTimestamptzLoader
    with connection.cursor() as cursor:
        # Django re-registers its own loader on a cursor when the connection's disagrees.
        assert cursor.cursor.adapters.get_loader(TIMESTAMPTZ_OID, Format.TEXT) is loader


def test_values_are_aware_utc_with_microseconds() -> None:
    value = _loaded("SELECT '2026-03-29 01:30:00.123456+02'::timestamptz")
    assert value == datetime.datetime(2026, 3, 28, 23, 30, 0, 123456, tzinfo=datetime.UTC)
    assert value.tzinfo is datetime.UTC


def test_a_session_in_another_time_zone_still_yields_the_same_instant_in_utc() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'America/St_Johns'")
    try:
        value = _loaded("SELECT '2026-01-01 12:00:00+00'::timestamptz")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET TIME ZONE 'UTC'")
    assert value == datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)
    assert value.tzinfo is datetime.UTC


def test_null_and_out_of_range_values_behave_as_with_djangos_loader() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT NULL::timestamptz")
        assert cursor.fetchone()[0] is None
    # psycopg maps no infinity to Python, with either loader: a clear DataError, not a wrong date.
    for register_djangos in (False, True):
        with connection.cursor() as cursor:
            if register_djangos:
                register_tzloader(datetime.UTC, cursor.cursor)
            cursor.execute("SELECT 'infinity'::timestamptz")
            with pytest.raises(DataError, match="after year 10K"):
                cursor.fetchone()
