"""The first sync of a WatermelonDB device: everything it may see, in one streamed response.

A device with no cursor receives every visible row of every table it syncs, scoped and
projected like any pull, in one ``pullChanges`` body streamed from PostgreSQL through a
server-side cursor (``DECLARE`` / ``FETCH``), so server memory does not grow with the data. The
rows are read in one REPEATABLE READ snapshot; the cursor that follows starts at that
snapshot's watermark, so nothing committed later is skipped (rows the snapshot already saw may
come again: applying them twice is harmless).

The body is what WatermelonDB's turbo first sync (``unsafeTurbo``, ``{syncJson}``) loads with
plain INSERTs: every table's rows in ``updated`` (``sendCreatedAsUpdated``), no id twice, an
empty ``deleted``, every value of its column's type. Its strategy is ``replacement``: a device
that lost its cursor (410) and re-syncs drops the rows that were deleted while it was away —
safe here because the whole set is in this one response.
"""

from __future__ import annotations

import uuid
from collections.abc import Generator, Iterator
from typing import Any

from django.db import connection, transaction

from apikit.json import dumps
from apikit.request_context import RequestContext
from audit.services import audit_read_record, audit_reads_required
from sync.cursor import SCHEMA_VERSION, Cursor, cursor_encode, watermark_now
from sync.registry import SyncTable
from sync.row_json import rows_text_sql
from sync.selectors import SyncScope

FETCH_ROWS = 2000
STREAM_CURSOR = "verdant_first_sync"


def first_sync_stream(
    *,
    user: Any,
    tables: list[SyncTable],
    scope: SyncScope,
    context: RequestContext | None,
) -> Generator[bytes, None, None]:
    """The response body in chunks. Read audit: one event per audited table with the ids that
    were actually streamed, written even when the client goes away half-way."""
    audited: dict[str, list[uuid.UUID]] = {
        table.name: [] for table in tables if audit_reads_required(table.model)
    }
    models = {table.name: table.model for table in tables}
    outermost = not connection.in_atomic_block
    try:
        with transaction.atomic():
            if outermost:  # inside an enclosing transaction (a test's) its isolation applies
                with connection.cursor() as db:
                    db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            watermark = watermark_now()  # the snapshot's first read fixes it
            yield b'{"changes":{'
            for position, table in enumerate(tables):
                prefix = b"," if position else b""
                yield prefix + dumps(table.name) + b':{"created":[],"updated":['
                yield from _table_rows(table=table, user=user, ids=audited.get(table.name))
                yield b'],"deleted":[]}'
        cursor = cursor_encode(Cursor(lo=watermark, hi=None, after=None, scope=scope.digest))
        tail = {
            "timestamp": max(1, watermark),
            "cursor": cursor,
            "has_more": False,
            "experimentalStrategy": "replacement",
            "schema_version": SCHEMA_VERSION,
        }
        yield b"}," + dumps(tail)[1:]
    finally:
        for name, ids in audited.items():
            if ids:
                audit_read_record(
                    context=context, model=models[name], objects=[{"id": pk} for pk in ids]
                )


def _table_rows(*, table: SyncTable, user: Any, ids: list[uuid.UUID] | None) -> Iterator[bytes]:
    sql, params = rows_text_sql(table=table, user=user, wmdb=True)
    first = True
    with connection.cursor() as db:
        db.execute(f"DECLARE {STREAM_CURSOR} NO SCROLL CURSOR FOR {sql}", params)
        try:
            while True:
                db.execute(f"FETCH {FETCH_ROWS} FROM {STREAM_CURSOR}")
                batch = db.fetchall()
                if not batch:
                    break
                if ids is not None:
                    ids.extend(row[0] for row in batch)
                text = ",".join(row[1] for row in batch)
                yield (text if first else "," + text).encode()
                first = False
        finally:
            db.execute(f"CLOSE {STREAM_CURSOR}")
