"""The pull: one page of changes since a cursor, built set-wise (docs/sync-internals.md).

1. Decode the cursor (400 if tampered), refuse it if compaction passed it (410). When the user's
   scope digest changed (grants, role, tables, archived containers) or a local migration added
   tables, the run first *resends* the difference as ordinary changes (sync.scope_change).
2. In one REPEATABLE READ transaction: fix ``hi`` (the cursor's, or the commit-safe watermark at
   the start of a run), then either a page of the resend, or up to ``limit + 1`` change-log
   entries with ``lo <= txid < hi`` after the cursor's position (index range scan: the log's
   depth does not matter), filtered to the user's tables and containers.
3. Log entries collapse to row ids per table; each table's *current* rows are read with one
   query (sync.row_json). Ids the scoped query does not return (deleted, archived, moved out of
   scope) become tombstones.
4. The next cursor keeps ``hi`` while ``has_more``; after the last page it is ``{lo: hi}``.

A WatermelonDB device with no cursor gets its first sync in one streamed response instead
(sync.first_sync). Query count per page is constant: it does not grow with the page size.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.db import connection, transaction

from apikit.errors import APIError
from apikit.request_context import RequestContext
from audit.services import audit_read_record, audit_reads_required
from sync import scope_change
from sync.cursor import (
    MAX_SCOPE_HISTORY,
    SCHEMA_VERSION,
    Cursor,
    cursor_decode,
    cursor_encode,
    watermark_now,
)
from sync.models import SyncState
from sync.pull_render import PageChanges, render_page
from sync.registry import SyncTable, sync_tables
from sync.row_json import rows_json_by_ids, rows_json_page, visible_rows
from sync.selectors import SyncScope, sync_scope, tables_for_user

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
# JSON bytes of rows per page (like the push's 10 MB): a page stops early above it.
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
OLDEST_SUPPORTED_SCHEMA = max(1, SCHEMA_VERSION - 2)
CURSOR_EXPIRED_DETAIL = (
    "This sync cursor is older than the server keeps history for. Pull again without a cursor "
    "(a full re-sync); unpushed local changes can still be pushed."
)
LOG_ENTRY = tuple[int, int, str, uuid.UUID]


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
    # Tables a local migration added (or added columns to): sent in full.
    migrated_tables: frozenset[str] = frozenset()


def min_retained_txid() -> int:
    state = SyncState.objects.filter(pk=1).values_list("min_retained_txid", flat=True).first()
    return int(state or 0)


def cursor_expired() -> APIError:
    return APIError(status=410, code="cursor_expired", detail=CURSOR_EXPIRED_DETAIL)


def _check_not_expired(cursor: Cursor | None) -> None:
    """410 for a cursor below what compaction retained. Called inside the page's snapshot, so a
    compaction committing meanwhile cannot delete tombstones between this check and the read."""
    if cursor is not None and 0 < cursor.lo < min_retained_txid():
        raise cursor_expired()


def _resolve_cursor(
    raw: str | None, *, scope: SyncScope, migrated: frozenset[str]
) -> Cursor | None:
    """The position to read from under ``scope``: a resend starts (or restarts) when the scope
    changed or a migration added tables. None: no cursor (a full pull)."""
    if not raw:
        return None
    cursor = cursor_decode(raw)
    if cursor.replacement:
        # A replacement run of the previous protocol: its pages destroy each other on a
        # WatermelonDB device, so the device re-syncs (the re-sync repairs it in one response).
        raise cursor_expired()
    full = tuple(sorted(set(cursor.full) | (migrated & set(scope.tables))))
    if cursor.scope != scope.digest:
        if cursor.in_transition and cursor.held:
            held = _unique((*cursor.held, cursor.scope))
            have = _unique((*cursor.have, cursor.scope))
        else:
            held = have = (cursor.scope,)
        if len(held) > MAX_SCOPE_HISTORY:
            raise cursor_expired()
        return Cursor(
            lo=cursor.lo,
            hi=None,
            after=None,
            scope=scope.digest,
            held=held,
            have=have,
            full=full,
            resend=(0, 0, ""),
        )
    if full != cursor.full:
        return replace(cursor, hi=None, after=None, full=full, resend=(0, 0, ""))
    return cursor


def _unique(digests: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(digests))


# --- the change log ------------------------------------------------------------------------------

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


# A scoped user's page merges one ordered range per container (sync_change_by_scope, migration
# 0005): PostgreSQL's Merge Append reads them lazily and stops at the LIMIT, so the cost follows
# the user's scope. Past this many containers one range of the whole log is cheaper to plan.
MAX_MERGED_SCOPES = 200
_SCOPE_RANGE = """
(SELECT txid, seq, tbl, row_id FROM sync_change_by_scope
  WHERE scope_id = %(scope{n})s::uuid
    AND txid >= %(lo)s::text::xid8 AND txid < %(hi)s::text::xid8
    AND (txid, seq) > (%(after_txid)s::text::xid8, %(after_seq)s)
    AND tbl = ANY(%(tables)s::text[])
  ORDER BY txid, seq
  LIMIT %(limit)s)
"""
# An entry naming two of the user's containers comes from two ranges: DISTINCT ON keeps one.
# Each range is cut at the page size too (an entry of the merged page is among the first
# ``limit`` of its own range): without it the planner may sort whole ranges (a bitmap scan under
# Gather Merge) instead of merging index scans that stop early (docs/benchmarks.md).
_SCOPED_PAGE = """
SELECT DISTINCT ON (s.txid, s.seq) s.txid::text::bigint AS page_txid, s.seq, s.tbl, s.row_id
  FROM ({ranges}) s
 ORDER BY s.txid, s.seq
 LIMIT %(limit)s
"""


def _log_page(
    *, cursor: Cursor, hi: int, tables: list[str], scope: SyncScope, limit: int
) -> list[LOG_ENTRY]:
    after = cursor.after or (cursor.lo, 0)
    containers = scope.log_filter()
    params: dict[str, Any] = {
        "lo": str(cursor.lo),
        "hi": str(hi),
        "after_txid": str(after[0]),
        "after_seq": after[1],
        "tables": tables,
        "limit": limit + 1,
    }
    if containers is not None and len(containers) <= MAX_MERGED_SCOPES:
        ranges = " UNION ALL ".join(_SCOPE_RANGE.format(n=n) for n in range(len(containers)))
        sql = _SCOPED_PAGE.format(ranges=ranges)
        params.update({f"scope{n}": str(pk) for n, pk in enumerate(containers)})
    else:
        sql = _LOG_PAGE.format(
            scope_filter="" if containers is None else "AND scope_ids && %(scope)s::uuid[]"
        )
        params["scope"] = containers
    with connection.cursor() as db:
        db.execute(sql, params)
        return list(db.fetchall())


def _collapse(
    *, entries: list[LOG_ENTRY], by_name: dict[str, SyncTable], user: Any, wmdb: bool
) -> tuple[PageChanges, int]:
    """The page's current rows (JSON per table) and tombstones, and the JSON size."""
    ids: dict[str, dict[uuid.UUID, None]] = defaultdict(dict)
    for _txid, _seq, tbl, row_id in entries:
        ids[tbl][row_id] = None
    changes = PageChanges()
    size = 0
    for name, table in by_name.items():
        wanted = list(ids.get(name, {}))
        if not wanted:
            changes.add(name)
            continue
        payload, found = rows_json_by_ids(table=table, user=user, ids=wanted, wmdb=wmdb)
        deleted = sorted(str(i) for i in wanted if i not in found)
        changes.add(name, payload=payload, deleted=deleted, sent=found)
        size += len(payload) + 39 * len(deleted)
    return changes, size


def _log_run_page(
    *,
    cursor: Cursor,
    hi: int,
    tables: list[SyncTable],
    scope: SyncScope,
    user: Any,
    limit: int,
    wmdb: bool,
) -> tuple[PageChanges, Cursor, bool]:
    by_name = {table.name: table for table in tables}
    entries = _log_page(cursor=cursor, hi=hi, tables=list(by_name), scope=scope, limit=limit)
    has_more = len(entries) > limit
    entries = entries[:limit]
    max_bytes = int(getattr(settings, "SYNC_PULL_MAX_BYTES", DEFAULT_MAX_BYTES))
    while True:
        changes, size = _collapse(entries=entries, by_name=by_name, user=user, wmdb=wmdb)
        if size <= max_bytes or len(entries) <= 1:
            break
        # Over the byte budget (large boundaries, long notes): a shorter page, the rest next.
        entries = entries[: len(entries) // 2]
        has_more = True
    if has_more:
        last_txid, last_seq = entries[-1][0], entries[-1][1]
        next_cursor = replace(cursor, hi=hi, after=(last_txid, last_seq), scope=scope.digest)
    else:
        next_cursor = Cursor(lo=hi, hi=None, after=None, scope=scope.digest)
    return changes, next_cursor, has_more


# --- the resend of a scope change ----------------------------------------------------------------


def _resend_page(
    *, cursor: Cursor, hi: int, scope: SyncScope, user: Any, limit: int, wmdb: bool
) -> tuple[PageChanges, Cursor, bool]:
    """Up to ``limit`` rows of the difference, table by table in dependency order: first the
    ids the device must drop, then the rows it must receive. The page after the last one goes
    on with the change log (a page never mixes the two)."""
    if cursor.resend is None:  # pragma: no cover - the caller checks
        raise ValueError("not in a resend")
    snapshots = scope_change.snapshots_load({*cursor.held, *cursor.have})
    if snapshots is None:
        raise cursor_expired()
    held = [snapshots[digest] for digest in cursor.held]
    have = [snapshots[digest] for digest in cursor.have]
    target = scope_change.Snapshot.of(scope)
    registry = sync_tables()
    order = [
        name
        for name in registry
        if name in target.tables or any(name in snapshot.tables for snapshot in held)
    ]
    index, kind, last = cursor.resend
    budget = limit
    changes = PageChanges()
    for name in order:
        changes.add(name)
    while index < len(order) and budget > 0:
        table = registry[order[index]]
        if kind == 0:
            predicate = scope_change.lost(
                table, held=held, target=target, may_sync=table.may_sync(user)
            )
            ids = _lost_ids(table, predicate, after=last, limit=budget)
            changes.add(table.name, deleted=[str(pk) for pk in ids])
            budget -= len(ids)
            if budget == 0 and ids:
                last = str(ids[-1])  # the page is full; more may follow
                break
            kind, last = 1, ""
        predicate = scope_change.gained(table, have=have, target=target, full=cursor.full)
        payload, ids = _gained_rows(
            table, predicate, user=user, after=last, limit=budget, wmdb=wmdb
        )
        changes.add(table.name, payload=payload, sent=set(ids))
        budget -= len(ids)
        if budget == 0 and ids:
            last = str(ids[-1])
            break
        index, kind, last = index + 1, 0, ""
    done = index >= len(order)
    next_cursor = replace(cursor, hi=hi, after=None, resend=None if done else (index, kind, last))
    return changes, next_cursor, True


def _lost_ids(
    table: SyncTable, predicate: scope_change.Predicate, *, after: str, limit: int
) -> list[uuid.UUID]:
    if predicate is False:
        return []
    rows = table.model._base_manager.all()
    if predicate is not True:
        rows = rows.filter(predicate)
    start = scope_change.after_id(after)
    if start is not None:
        rows = rows.filter(pk__gt=start)
    return list(rows.order_by("pk").values_list("pk", flat=True)[:limit])


def _gained_rows(
    table: SyncTable,
    predicate: scope_change.Predicate,
    *,
    user: Any,
    after: str,
    limit: int,
    wmdb: bool,
) -> tuple[str, list[uuid.UUID]]:
    if predicate is False:
        return "[]", []
    rows = visible_rows(table=table, user=user)
    if predicate is not True:
        rows = rows.filter(predicate)
    start = scope_change.after_id(after)
    if start is not None:
        rows = rows.filter(pk__gt=start)
    return rows_json_page(table=table, user=user, queryset=rows.order_by("pk")[:limit], wmdb=wmdb)


# --- entry point ---------------------------------------------------------------------------------


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


def pull_scope(*, user: Any, request: PullRequest) -> tuple[list[SyncTable], SyncScope]:
    """The tables and scope of a pull; the scope's meaning is stored for later scope changes."""
    _validate(request)
    tables = tables_for_user(user=user, requested=request.tables)
    scope = sync_scope(user=user, tables=tables)
    scope_change.snapshot_remember(scope)
    return tables, scope


def sync_pull(*, user: Any, request: PullRequest, context: RequestContext | None) -> bytes:
    """One page of changes as a JSON document (bytes), native or WatermelonDB-shaped."""
    tables, scope = pull_scope(user=user, request=request)
    cursor = _resolve_cursor(request.cursor, scope=scope, migrated=request.migrated_tables)
    start = cursor or Cursor(lo=0, hi=None, after=None, scope=scope.digest)
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            # Every page reads the log and the rows from one snapshot. (Inside an enclosing
            # transaction, e.g. a test's, the enclosing isolation level applies.)
            with connection.cursor() as db:
                db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _check_not_expired(cursor)  # the transaction's first read fixes its snapshot
        hi = start.hi if start.hi is not None else max(watermark_now(), start.lo)
        if start.resend is not None:
            changes, next_cursor, has_more = _resend_page(
                cursor=start,
                hi=hi,
                scope=scope,
                user=user,
                limit=request.limit,
                wmdb=request.wmdb,
            )
        else:
            changes, next_cursor, has_more = _log_run_page(
                cursor=start,
                hi=hi,
                tables=tables,
                scope=scope,
                user=user,
                limit=request.limit,
                wmdb=request.wmdb,
            )
        for table in tables:
            found = changes.sent.get(table.name)
            if found and audit_reads_required(table.model):
                audit_read_record(
                    context=context, model=table.model, objects=[{"id": pk} for pk in found]
                )
    return render_page(
        changes=changes,
        cursor=cursor_encode(next_cursor),
        position=next_cursor.hi if next_cursor.hi is not None else next_cursor.lo,
        has_more=has_more,
        strategy=Strategy.INCREMENTAL,
        wmdb=request.wmdb,
    )


def pull_limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return int(getattr(settings, "SYNC_PULL_DEFAULT_LIMIT", DEFAULT_LIMIT))
    try:
        return int(raw)
    except ValueError:
        raise APIError(
            status=400, code="invalid_limit", detail=f"limit must be between 1 and {MAX_LIMIT}."
        ) from None
