"""Reading the change log (``sync_change``) for the relay. Synchronous: called through
``realtime.db.tenant_call``, in the tenant's schema.

Entries are read in ``(txid, seq)`` order and only below the commit-safe watermark
(``sync.cursor.watermark_now``): every transaction with a smaller id has finished, so no entry can
appear later behind a position already delivered. An entry of a transaction still running (or
committed while an older one still runs) waits until the watermark passes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import connection

from realtime.registry import Entry
from sync.cursor import watermark_now
from sync.pull import min_retained_txid

Position = tuple[int, int]

_READ = """
SELECT txid::text::bigint, seq, tbl, row_id::text, op, scope_ids::text[]
  FROM sync_change
 WHERE (txid, seq) > (%s::text::xid8, %s)
   AND txid < %s::text::xid8
 ORDER BY txid, seq
 LIMIT %s
"""
# The newest entries of a closed range, newest first (reversed by the caller): a catch-up wants
# the end of the range, and only needs to know whether anything older was left out.
_BETWEEN = """
SELECT txid::text::bigint, seq, tbl, row_id::text, op, scope_ids::text[]
  FROM sync_change
 WHERE (txid, seq) > (%s::text::xid8, %s)
   AND (txid, seq) <= (%s::text::xid8, %s)
 ORDER BY txid DESC, seq DESC
 LIMIT %s
"""
_LAST = "SELECT txid::text::bigint, seq FROM sync_change ORDER BY txid DESC, seq DESC LIMIT 1"
_PENDING = "SELECT EXISTS (SELECT 1 FROM sync_change WHERE txid >= %s::text::xid8)"


@dataclass(frozen=True)
class LogRead:
    entries: list[Entry]
    # More entries below the watermark than ``limit``: read again at once.
    more: bool
    # Entries at or above the watermark (their transactions, or older ones, still running).
    pending: bool


def log_position() -> Position:
    """Where a feed starts: just below the watermark (everything older has been written)."""
    return (watermark_now(), 0)


def log_last_written() -> Position:
    """The newest entry written so far, committed or not (below the watermark or not)."""
    with connection.cursor() as cursor:
        cursor.execute(_LAST)
        row = cursor.fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def log_window_start() -> int:
    """The oldest txid a resume may start from: compaction removed entries below it."""
    return min_retained_txid()


def _entries(rows: list[tuple[Any, ...]]) -> list[Entry]:
    return [
        Entry(int(t), int(s), str(tbl), str(row), str(op), tuple(scopes or ()))
        for t, s, tbl, row, op, scopes in rows
    ]


def log_read_between(*, after: Position, upto: Position, limit: int) -> tuple[list[Entry], bool]:
    """The newest ``limit`` entries in ``(after, upto]``, oldest first, and whether older ones in
    that range were left out. ``upto`` is a feed's position (below a watermark already passed):
    the range is final, no entry can still appear in it."""
    with connection.cursor() as cursor:
        cursor.execute(_BETWEEN, [str(after[0]), after[1], str(upto[0]), upto[1], limit + 1])
        rows = cursor.fetchall()
    truncated = len(rows) > limit
    return _entries(rows[:limit])[::-1], truncated


def log_read(*, after: Position, limit: int) -> LogRead:
    """Up to ``limit`` entries after ``after`` below the watermark, oldest first."""
    watermark = watermark_now()
    with connection.cursor() as cursor:
        cursor.execute(_READ, [str(after[0]), after[1], str(watermark), limit + 1])
        entries = _entries(cursor.fetchall())
        more = len(entries) > limit
        entries = entries[:limit]
        cursor.execute(_PENDING, [str(watermark)])
        row = cursor.fetchone()
    return LogRead(entries=entries, more=more, pending=bool(row and row[0]))
