"""Per-tenant fan-out in one process with bounded backend memory (issue 20, item 2).

A task that visits every tenant's schema on one connection (the reminder sweep, the nightly
purges) grows that PostgreSQL backend by ~0.17 MiB per schema, for as long as the connection
lives. ``schema_walk`` wraps the loop: it closes the connection after every
``DB_MAX_SCHEMAS_PER_CONNECTION`` items, so the next schema starts on a fresh backend. The web
side gets the same bound from the database backend (tenants/postgresql_backend/base.py), which
counts only between requests and so cannot see a loop inside one task.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from django.db import connection

from tenants.postgresql_backend.base import schema_bound

T = TypeVar("T")


def schema_walk(*, items: Iterable[T], every: int | None = None) -> Iterator[T]:
    """Yield ``items`` (tenants, schema names: one schema each) and close the database
    connection after every ``every`` of them (default: ``DB_MAX_SCHEMAS_PER_CONNECTION``; 0
    disables). The close happens when the caller asks for the next item, so leave any
    ``tenant_context`` and cursor before that. Inside a transaction nothing is closed: closing
    would throw the transaction away."""
    bound = schema_bound() if every is None else every
    for served, item in enumerate(items, start=1):
        yield item
        if bound > 0 and served % bound == 0 and not connection.in_atomic_block:
            connection.close()
