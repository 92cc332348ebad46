"""The pull: one page of changes since a cursor, built set-wise (docs/sync.md).

1. Decode the cursor (400 if tampered), refuse it if compaction passed it (410), and restart as a
   ``replacement`` run when the user's scope digest changed (grants, role, tables, archived
   containers).
2. In one REPEATABLE READ transaction: fix ``hi`` (the cursor's, or
   ``pg_snapshot_xmin(pg_current_snapshot())`` at the start of a run), read up to ``limit + 1``
   change-log entries with ``lo <= txid < hi`` after the cursor's position, ordered by
   ``(txid, seq)`` (index range scan: the log's depth does not matter), filtered to the user's
   tables and containers.
3. Collapse them to row ids per table and read each table's *current* rows with one query per
   table, JSON built by PostgreSQL (``json_agg``) with only the fields the role may receive. Ids
   the scoped query does not return (deleted, archived, moved out of scope) become tombstones.
4. The next cursor keeps ``hi`` while ``has_more``; after the last page it is ``{lo: hi}``.

Query count per page is constant: it does not grow with the page size (tested).
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from django.conf import settings
from django.db import connection, models, transaction

from apikit.errors import APIError
from apikit.request_context import RequestContext
from audit.services import audit_read_record, audit_reads_required
from sync.cursor import (
    SCHEMA_VERSION,
    Cursor,
    cursor_decode,
    cursor_encode,
    watermark_now,
)
from sync.models import SyncState
from sync.registry import SyncTable
from sync.selectors import SyncScope, sync_scope, tables_for_user

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
# JSON bytes of rows per page (like the push's 10 MB): a page stops early above it.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
OLDEST_SUPPORTED_SCHEMA = max(1, SCHEMA_VERSION - 2)
CURSOR_EXPIRED_DETAIL = (
    "This sync cursor is older than the server keeps history for. Pull again without a cursor "
    "(a full replacement sync); unpushed local changes can still be pushed."
)


class Strategy:
    INCREMENTAL = "incremental"
    REPLACEMENT = "replacement"


@dataclass(frozen=True)
class PullRequest:
    cursor: str | None
    limit: int
    tables: Sequence[str] | None
    wmdb: bool = False
    schema_version: int | None = None


def min_retained_txid() -> int:
    state = SyncState.objects.filter(pk=1).values_list("min_retained_txid", flat=True).first()
    return int(state or 0)


def _start_cursor(*, scope: SyncScope, replacement: bool) -> Cursor:
    return Cursor(lo=0, hi=None, after=None, scope=scope.digest, replacement=replacement)


def _check_not_expired(raw: str | None) -> None:
    """410 for a cursor below what compaction retained. Called inside the page's snapshot, so a
    compaction committing meanwhile cannot delete tombstones between this check and the read."""
    if raw and 0 < cursor_decode(raw).lo < min_retained_txid():
        raise APIError(status=410, code="cursor_expired", detail=CURSOR_EXPIRED_DETAIL)


def _resolve_cursor(raw: str | None, *, scope: SyncScope) -> tuple[Cursor, str]:
    if not raw:
        return _start_cursor(scope=scope, replacement=False), Strategy.INCREMENTAL
    cursor = cursor_decode(raw)
    if cursor.scope != scope.digest:
        # Access, role or table set changed: the client replaces its dataset (keeping unpushed
        # changes) with a full run under the new scope.
        return _start_cursor(scope=scope, replacement=True), Strategy.REPLACEMENT
    if cursor.replacement:
        return cursor, Strategy.REPLACEMENT
    return cursor, Strategy.INCREMENTAL


# ORDER BY names the table's columns: an output column called "txid" (the bigint cast) would
# shadow them and turn the index range scan into a sort of the whole range.
_LOG_PAGE = """
SELECT c.txid::text::bigint AS page_txid, c.seq, c.tbl, c.row_id
  FROM sync_change c
 WHERE txid >= %(lo)s::text::xid8
   AND txid < %(hi)s::text::xid8
   AND (txid, seq) > (%(after_txid)s::text::xid8, %(after_seq)s)
   AND tbl = ANY(%(tables)s::text[])
   {scope_filter}
 ORDER BY c.txid, c.seq
 LIMIT %(limit)s
"""


def _log_page(
    *, cursor: Cursor, hi: int, tables: list[str], scope: SyncScope, limit: int
) -> list[tuple[int, int, str, uuid.UUID]]:
    after = cursor.after or (cursor.lo, 0)
    containers = scope.log_filter()
    sql = _LOG_PAGE.format(
        scope_filter="" if containers is None else "AND scope_ids && %(scope)s::uuid[]"
    )
    params: dict[str, Any] = {
        "lo": str(cursor.lo),
        "hi": str(hi),
        "after_txid": str(after[0]),
        "after_seq": after[1],
        "tables": tables,
        "scope": containers,
        "limit": limit + 1,
    }
    with connection.cursor() as db:
        db.execute(sql, params)
        return list(db.fetchall())


def _json_value(field: Any, column: str) -> str:
    """SQL rendering one column as JSON (UTC timestamps with ``Z``, like the rest of the API)."""
    if isinstance(field, models.DateTimeField):
        return f"to_char(r.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    return f"r.{column}"


def _rows_json(*, table: SyncTable, user: Any, ids: list[uuid.UUID]) -> tuple[str, set[uuid.UUID]]:
    """The current, visible rows among ``ids`` as a JSON array (text) and the ids found."""
    projected = table.projection(user)
    wire_fields = [name for name in table.fields if name in projected]
    attnames = [table.fields[name] for name in wire_fields]
    meta = table.model._meta
    queryset = table.scope(user, table.model._base_manager.filter(archived_at__isnull=True))
    inner_sql, inner_params = queryset.values(*attnames).query.sql_with_params()
    pairs = ", ".join(
        f"'{name}', {_json_value(meta.get_field(attname), connection.ops.quote_name(attname))}"
        for name, attname in zip(wire_fields, attnames, strict=True)
    )
    # Column names come from the registry and Django's own compiled SQL, never from input.
    sql = (
        f"SELECT coalesce(json_agg(json_build_object({pairs}) ORDER BY r.id)::text, '[]'), "  # noqa: S608
        "coalesce(array_agg(r.id), '{}') "
        f"FROM ({inner_sql}) r WHERE r.id = ANY(%s::uuid[])"
    )
    with connection.cursor() as db:
        db.execute(sql, (*inner_params, ids))
        payload, found = db.fetchone()
    return payload, set(found)


def _build(
    *,
    entries: list[tuple[int, int, str, uuid.UUID]],
    by_name: dict[str, SyncTable],
    user: Any,
) -> tuple[dict[str, tuple[str, list[str]]], dict[str, set[uuid.UUID]], int]:
    """The page's rows (JSON per table), tombstones, the ids sent, and the JSON size."""
    ids: dict[str, dict[uuid.UUID, None]] = defaultdict(dict)
    for _txid, _seq, tbl, row_id in entries:
        ids[tbl][row_id] = None
    changes: dict[str, tuple[str, list[str]]] = {}
    sent: dict[str, set[uuid.UUID]] = {}
    size = 0
    for name, table in by_name.items():
        wanted = list(ids.get(name, {}))
        if not wanted:
            changes[name] = ("[]", [])
            continue
        payload, found = _rows_json(table=table, user=user, ids=wanted)
        deleted = sorted(str(i) for i in wanted if i not in found)
        changes[name] = (payload, deleted)
        sent[name] = found
        size += len(payload) + 39 * len(deleted)
    return changes, sent, size


def _page(
    *, cursor: Cursor, tables: list[SyncTable], scope: SyncScope, user: Any, limit: int
) -> tuple[dict[str, tuple[str, list[str]]], Cursor, bool, dict[str, set[uuid.UUID]]]:
    hi = cursor.hi if cursor.hi is not None else max(watermark_now(), cursor.lo)
    by_name = {table.name: table for table in tables}
    entries = _log_page(cursor=cursor, hi=hi, tables=list(by_name), scope=scope, limit=limit)
    has_more = len(entries) > limit
    entries = entries[:limit]
    max_bytes = int(getattr(settings, "SYNC_PULL_MAX_BYTES", DEFAULT_MAX_BYTES))
    while True:
        changes, sent, size = _build(entries=entries, by_name=by_name, user=user)
        if size <= max_bytes or len(entries) <= 1:
            break
        # Over the byte budget (large boundaries, long notes): a shorter page, the rest next.
        entries = entries[: len(entries) // 2]
        has_more = True
    if has_more:
        last_txid, last_seq = entries[-1][0], entries[-1][1]
        next_cursor = Cursor(
            lo=cursor.lo,
            hi=hi,
            after=(last_txid, last_seq),
            scope=scope.digest,
            replacement=cursor.replacement,
        )
    else:
        next_cursor = Cursor(lo=hi, hi=None, after=None, scope=scope.digest, replacement=False)
    return changes, next_cursor, has_more, sent


def _validate(request: PullRequest) -> None:
    if not 1 <= request.limit <= MAX_LIMIT:
        raise APIError(
            status=400, code="invalid_limit", detail=f"limit must be between 1 and {MAX_LIMIT}."
        )
    if request.schema_version is not None:
        if request.schema_version > SCHEMA_VERSION or request.schema_version < 1:
            raise APIError(
                status=400,
                code="invalid_schema_version",
                detail=f"schema_version must be between 1 and {SCHEMA_VERSION}.",
            )
        if request.schema_version < OLDEST_SUPPORTED_SCHEMA:
            raise APIError(
                status=426,
                code="schema_version_unsupported",
                detail=f"Update the app: this server supports sync schema versions "
                f"{OLDEST_SUPPORTED_SCHEMA} to {SCHEMA_VERSION}.",
            )


def sync_pull(*, user: Any, request: PullRequest, context: RequestContext | None) -> bytes:
    """One page of changes as a JSON document (bytes), native or WatermelonDB-shaped."""
    _validate(request)
    tables = tables_for_user(user=user, requested=request.tables)
    scope = sync_scope(user=user, tables=tables)
    cursor, strategy = _resolve_cursor(request.cursor, scope=scope)
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            # Every page reads the log and the rows from one snapshot. (Inside an enclosing
            # transaction, e.g. a test's, the enclosing isolation level applies.)
            with connection.cursor() as db:
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _check_not_expired(request.cursor)  # the transaction's first read fixes its snapshot
        changes, next_cursor, has_more, sent = _page(
            cursor=cursor, tables=tables, scope=scope, user=user, limit=request.limit
        )
        for table in tables:
            found = sent.get(table.name)
            if found and audit_reads_required(table.model):
                audit_read_record(
                    context=context, model=table.model, objects=[{"id": pk} for pk in found]
                )
    return _render(
        changes=changes,
        cursor=cursor_encode(next_cursor),
        has_more=has_more,
        strategy=strategy,
        wmdb=request.wmdb,
    )


def _render(
    *,
    changes: dict[str, tuple[str, list[str]]],
    cursor: str,
    has_more: bool,
    strategy: str,
    wmdb: bool,
) -> bytes:
    now = time.time()
    if wmdb:
        # WatermelonDB's pullChanges result: everything as "updated" (the app sets
        # sendCreatedAsUpdated), a numeric timestamp it stores but we ignore, plus the opaque
        # cursor the adapter keeps in database.localStorage and loops on has_more.
        body: dict[str, Any] = {
            "changes": {
                name: {
                    "created": [],
                    "updated": orjson.Fragment(payload),
                    "deleted": deleted,
                }
                for name, (payload, deleted) in changes.items()
            },
            "timestamp": int(now * 1000),
            "cursor": cursor,
            "has_more": has_more,
            "experimentalStrategy": strategy,
            "schema_version": SCHEMA_VERSION,
        }
    else:
        body = {
            "strategy": strategy,
            "changes": {
                name: {"upserted": orjson.Fragment(payload), "deleted": deleted}
                for name, (payload, deleted) in changes.items()
            },
            "cursor": cursor,
            "has_more": has_more,
            "server_time": datetime.fromtimestamp(now, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "schema_version": SCHEMA_VERSION,
        }
    return orjson.dumps(body)


def pull_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return int(getattr(settings, "SYNC_PULL_DEFAULT_LIMIT", DEFAULT_LIMIT))
    try:
        return int(raw)
    except ValueError:
        raise APIError(
            status=400, code="invalid_limit", detail=f"limit must be between 1 and {MAX_LIMIT}."
        ) from None
