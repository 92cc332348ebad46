"""timestamptz values loaded by psycopg's C loader instead of Django's pure-Python one.

Django registers its own timestamptz loader on every connection (``psycopg_any.BaseTzLoader``):
a subclass of psycopg's *Python* loader, which parses each value with a regular expression and
then replaces its tzinfo. A list page of 50 rows with two timestamps spends about 0.7 ms in it;
psycopg's C loader (psycopg-binary) does the same work about 7x faster. The C class cannot be
subclassed, so this loader wraps one instance of it.

Django also checks the ``timezone`` attribute of the connection's loader whenever it opens a
cursor and re-registers its own loader (copying the adapters map) when they disagree; the class
attribute below keeps that check satisfied.

Same values as Django's loader: Django sets the session's TimeZone to UTC on connect (USE_TZ with
TIME_ZONE "UTC"), so the C loader returns datetimes whose tzinfo is ``datetime.timezone.utc``;
should a session ever hold another TimeZone, the value is converted to UTC (the same instant),
where Django's loader would only have relabelled it.
"""

from __future__ import annotations

import datetime
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.adapt import AdaptersMap, Loader
from psycopg.pq import Format

UTC = datetime.UTC
_TIMESTAMPTZ_OID = psycopg.adapters.types["timestamptz"].oid


class UtcTimestamptzLoader(Loader):
    timezone = UTC  # read by Django's DatabaseWrapper.create_cursor

    def __init__(self, oid: int, context: Any = None) -> None:
        super().__init__(oid, context)
        native = psycopg.adapters.get_loader(_TIMESTAMPTZ_OID, Format.TEXT)
        if native is None:  # pragma: no cover  (psycopg always knows timestamptz)
            raise RuntimeError("psycopg has no timestamptz loader")
        self._load = native(oid, context).load

    def load(self, data: Any) -> datetime.datetime:
        value: datetime.datetime = self._load(data)
        return value if value.tzinfo is UTC else value.astimezone(UTC)


@lru_cache
def adapters_with_utc_loader(template: AdaptersMap) -> AdaptersMap:
    """Django's adapters map for the connection, with the timestamptz loader replaced. Cached
    like Django's own template, so connections share one map instead of copying it."""
    adapters = AdaptersMap(template)
    adapters.register_loader("timestamptz", UtcTimestamptzLoader)
    return adapters
