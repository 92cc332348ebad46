"""Deciding and writing a push, set-wise: the engine orchestrates, ``deciders`` decides rows.

Phase 1 (no writes): per table, in dependency order — structural checks, one query for the
pushed ids' current state, one query per referenced table (rows written earlier in the batch
are known without a query), the table's ``preload`` hook, then each row in memory by the
decider of the table's conflict policy (``deciders.DECIDERS``): insert / update / delete /
duplicate / gone / conflict / rejected. Stale rows of a ``field_merge`` table are merged
together (one history query); a table's ``check_batch`` hook then sees all its decided rows at
once (appointments: one overlap query for the whole batch plus an in-batch check).

Phase 2 (writes): per table one INSERT, one UPDATE and one soft-delete UPDATE, each an
``unnest`` with the version compare-and-swap. Rows missing from RETURNING lost a race since
phase 1 and are re-decided from one more query. A constraint the checks could not see (another
device booked the slot, or corrected the row, a moment ago) aborts the statement: its savepoint
is rolled back and that table's rows are replayed one savepoint each (the slow path), reported
by the table's ``constraints`` rules.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from sync.push import deciders, sql
from sync.push.context import PushContext
from sync.push.deciders import Sent, conflict, differing
from sync.push.parsing import PushBatch
from sync.push.rows import SUCCESS, Draft, Mode, RowIn, RowResult, Status, error
from sync.registry import ConflictPolicy, SyncTable, reference_loader, sync_tables

logger = logging.getLogger(__name__)

UNKNOWN_TABLE = "This table cannot be pushed; pushable tables: {tables}."
DUPLICATE_IN_BATCH = "This id appears more than once for this table in the batch."
BATCH_ABORTED = "Not written: another row of this all-or-nothing batch failed."
CONSTRAINT = "The row conflicts with data written at the same time ({constraint})."

# Rows answered before any decision (malformed, duplicated in the batch, unknown table), by
# (table, index in the request).
Early = dict[tuple[str, int], RowResult]


@dataclass
class PushOutcome:
    results: list[RowResult]
    summary: dict[str, int]
    # {table: {mode: ids written}}, for the audit trail and follow-ups.
    written_by_mode: dict[str, dict[Mode, list[uuid.UUID]]] = field(default_factory=dict)
    slow_path_tables: list[str] = field(default_factory=list)


class _AbortError(Exception):
    """Rolls back every write of an all-or-nothing batch."""


# --- entry point -------------------------------------------------------------------------------


def push_apply(*, user: Any, device_id: uuid.UUID | None, batch: PushBatch) -> PushOutcome:
    """Decide and write ``batch`` in the caller's transaction (the view's, which also stores
    the idempotent response); returns a result per row in request order."""
    ctx = PushContext(user=user, device_id=device_id, now=timezone.now())
    tables = sync_tables()
    early: Early = {}
    drafts_by_table: dict[str, list[Draft]] = {}
    for name in _ordered(batch.tables, tables):
        table = tables.get(name)
        if table is None:
            for row in batch.tables[name]:
                early[(name, row.index)] = _result_for_unknown(name, row, tables)
        else:
            drafts_by_table[name] = _decide_table(table, batch.tables[name], ctx, early)
    outcome = PushOutcome(results=[], summary={})
    if batch.atomic == "all":
        _write_all_or_nothing(drafts_by_table, tables, ctx, outcome, decided_early=bool(early))
    else:
        _write_all(drafts_by_table, tables, ctx, outcome, strict=False)
    outcome.results = [
        _projected(result, tables, user)
        for result in _in_request_order(batch, drafts_by_table, early)
    ]
    outcome.summary = {str(status): 0 for status in Status}
    for result in outcome.results:
        outcome.summary[str(result.status)] += 1
    return outcome


def _projected(result: RowResult, tables: dict[str, SyncTable], user: Any) -> RowResult:
    """A conflict's server copy holds only the fields the pusher's role may receive (the
    table's ``projection``, as in the pull)."""
    table = tables.get(result.table)
    if result.server_record is None or table is None:
        return result
    visible = table.projection(user)
    record = {
        name: value
        for name, value in result.server_record.items()
        if name in visible or name not in table.fields
    }
    return replace(result, server_record=record)


def _ordered(pushed: dict[str, list[RowIn]], tables: dict[str, SyncTable]) -> list[str]:
    """The pushed tables in dependency order (parents first, so a batch may create a field and
    its plantings), then unknown names."""
    known = [name for name in tables if name in pushed]
    return known + [name for name in pushed if name not in tables]


def _result_for_unknown(table: str, row: RowIn, tables: dict[str, SyncTable]) -> RowResult:
    pushable = ", ".join(
        sorted(
            name
            for name, known in tables.items()
            if known.conflict_policy != ConflictPolicy.SERVER_WINS
        )
    )
    return RowResult(
        table=table,
        id=str(row.id or row.raw_id),
        status=Status.REJECTED,
        errors=[error("unknown_table", UNKNOWN_TABLE.format(tables=pushable))],
    )


def _in_request_order(
    batch: PushBatch, drafts_by_table: dict[str, list[Draft]], early: Early
) -> list[RowResult]:
    results = []
    for name, rows in batch.tables.items():
        by_index = {d.row.index: d for d in drafts_by_table.get(name, [])}
        for row in rows:
            decided = by_index.get(row.index)
            result = early.get((name, row.index)) or (decided.result if decided else None)
            if result is None:  # pragma: no cover - every row is decided above
                raise RuntimeError(f"undecided row {name}[{row.index}]")
            results.append(result)
    return results


def _failed(draft: Draft) -> bool:
    return draft.result is not None and draft.result.status not in SUCCESS


# --- phase 1: decide ---------------------------------------------------------------------------


def _decide_table(
    table: SyncTable, rows: list[RowIn], ctx: PushContext, early: Early
) -> list[Draft]:
    valid = _structurally_valid(table, rows, early)
    existing = sql.existing_rows(table, [row.id for row in valid if row.id is not None])
    sent_by_row = {row.index: deciders.parse_fields(table, row) for row in valid}
    _load_refs(table, valid, sent_by_row, existing, ctx)
    if table.preload is not None:
        table.preload(valid, ctx)
    decide = deciders.DECIDERS[table.conflict_policy]
    drafts: list[Draft] = []
    stale: list[tuple[Draft, Sent]] = []
    for row in valid:
        if row.id is None:  # pragma: no cover - filtered above
            continue
        draft = Draft(row=row, table=table.name, id=row.id, existing=existing.get(row.id))
        decide(table, draft, sent_by_row[row.index], ctx)
        if deciders.undecided(draft):
            stale.append((draft, sent_by_row[row.index]))
        else:
            deciders.remember(table, draft, ctx)
        drafts.append(draft)
    deciders.merge_stale(table, stale, ctx)
    if table.check_batch is not None:
        table.check_batch(drafts, ctx)
    return drafts


def _structurally_valid(table: SyncTable, rows: list[RowIn], early: Early) -> list[RowIn]:
    """The rows with a well-formed change and an id not seen before in this table; the others
    are answered ``rejected`` in ``early``."""
    seen: set[uuid.UUID] = set()
    valid: list[RowIn] = []
    for row in rows:
        if row.errors or row.id is None:
            errors = row.errors
        elif row.id in seen:
            errors = [error("duplicate_in_batch", DUPLICATE_IN_BATCH, "id")]
        else:
            seen.add(row.id)
            valid.append(row)
            continue
        early[(table.name, row.index)] = RowResult(
            table=table.name, id=str(row.id or row.raw_id), status=Status.REJECTED, errors=errors
        )
    return valid


def _load_refs(
    table: SyncTable,
    rows: list[RowIn],
    sent_by_row: dict[int, Sent],
    existing: dict[uuid.UUID, dict[str, Any]],
    ctx: PushContext,
) -> None:
    """One query per referenced table for the ids not already known (batch rows included);
    ids of the existing rows' references too, for the scope check of updates."""
    wanted: dict[str, set[uuid.UUID]] = defaultdict(set)
    for column in table.columns:
        if column.ref is None:
            continue
        values = [sent_by_row[row.index].values.get(column.name) for row in rows]
        values += [current.get(column.name) for current in existing.values()]
        wanted[column.ref].update(value for value in values if isinstance(value, uuid.UUID))
    for name, ids in wanted.items():
        known = ctx.refs.get(name, {})
        missing = sorted(ref_id for ref_id in ids if ref_id not in known)
        if not missing:
            continue
        db_table, select = reference_loader(name)
        for info in sql.referenced_rows(db_table, select, missing):
            ctx.remember(name, info["id"], info)


# --- phase 2: write ----------------------------------------------------------------------------


def _write_all_or_nothing(
    drafts_by_table: dict[str, list[Draft]],
    tables: dict[str, SyncTable],
    ctx: PushContext,
    outcome: PushOutcome,
    *,
    decided_early: bool,
) -> None:
    """``"atomic": "all"``: any row that is not applied / merged / duplicate rolls the whole
    batch back; the offending rows keep their result, every other row is ``batch_aborted``."""
    drafts = [draft for table_drafts in drafts_by_table.values() for draft in table_drafts]
    if decided_early or any(_failed(draft) for draft in drafts):
        # Nothing is written: the rows that would have been are aborted.
        aborted = [draft for draft in drafts if draft.mode is not None]
    else:
        try:
            with transaction.atomic():
                _write_all(drafts_by_table, tables, ctx, outcome, strict=True)
                if any(_failed(draft) for draft in drafts):
                    raise _AbortError
            return
        except _AbortError:
            outcome.written_by_mode = {}
        # Rolled back: every row not reported otherwise was not written.
        aborted = [d for d in drafts if d.result is None or d.result.status in SUCCESS]
    for draft in aborted:
        draft.finish(Status.REJECTED, errors=[error("batch_aborted", BATCH_ABORTED)])


def _write_all(
    drafts_by_table: dict[str, list[Draft]],
    tables: dict[str, SyncTable],
    ctx: PushContext,
    outcome: PushOutcome,
    *,
    strict: bool,
) -> None:
    for name, drafts in drafts_by_table.items():
        table = tables[name]
        pending = [d for d in drafts if d.mode is not None]
        if not pending:
            continue
        try:
            _write_table_in_savepoint(table, pending, ctx)
        except IntegrityError as exc:
            if strict:
                for draft in pending:
                    draft.finish(Status.REJECTED, errors=[_constraint_error(table, exc)])
                raise _AbortError from exc
            logger.warning("sync push slow path for %s: %s", name, exc)
            outcome.slow_path_tables.append(name)
            _write_one_by_one(table, pending, ctx)
        by_mode: dict[Mode, list[uuid.UUID]] = defaultdict(list)
        for draft in pending:
            if draft.written is not None:
                by_mode[draft.written].append(draft.id)
        outcome.written_by_mode[name] = dict(by_mode)
        written = [row_id for ids in by_mode.values() for row_id in ids]
        if table.after_write is not None and written:
            table.after_write(written)


def _write_one_by_one(table: SyncTable, pending: list[Draft], ctx: PushContext) -> None:
    """The slow path: each row in its own savepoint, so only the row that trips a constraint
    fails."""
    for draft in pending:
        try:
            _write_table_in_savepoint(table, [draft], ctx)
        except IntegrityError as exc:
            _constraint_failure(table, draft, exc)


# Two devices inserting rows that collide on an exclusion constraint (the same clinician's slot)
# can each wait for the other's speculative insertion; PostgreSQL then cancels one statement
# with "deadlock detected". Nothing was decided yet (the drafts change only after every
# statement succeeded), so the table's writes are retried in a fresh savepoint, where they wait
# for the surviving writer and see its row: a conflict, reported as such, never a 503.
DEADLOCK_ATTEMPTS = 3


def _write_table_in_savepoint(table: SyncTable, drafts: list[Draft], ctx: PushContext) -> None:
    for attempt in range(1, DEADLOCK_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                _write_table(table, drafts, ctx)
            return
        except OperationalError as exc:
            deadlock = isinstance(exc.__cause__, psycopg.errors.DeadlockDetected)
            if not deadlock or attempt == DEADLOCK_ATTEMPTS:
                raise
            logger.warning(
                "sync push: deadlock writing %s, attempt %d; retrying", table.name, attempt
            )


def _write_table(table: SyncTable, drafts: list[Draft], ctx: PushContext) -> None:
    user_id = ctx.user.pk
    inserts = [d for d in drafts if d.mode == Mode.INSERT]
    updates = [d for d in drafts if d.mode == Mode.UPDATE]
    deletes = [d for d in drafts if d.mode == Mode.DELETE]
    inserted = sql.insert_rows(
        table, [d.id for d in inserts], [d.values for d in inserts], user_id=user_id
    )
    updated = sql.update_rows(
        table,
        [d.id for d in updates],
        [d.expected_version or 0 for d in updates],
        [d.values for d in updates],
        user_id=user_id,
    )
    deleted = sql.delete_rows(
        table, [d.id for d in deletes], [d.expected_version or 0 for d in deletes], user_id=user_id
    )
    lost: list[Draft] = []
    for group, done in ((inserts, inserted), (updates, updated), (deletes, deleted)):
        for draft in group:
            if draft.id in done:
                draft.written = draft.mode
                status = Status.MERGED if draft.merged_fields else Status.APPLIED
                draft.result = RowResult(
                    table=table.name,
                    id=str(draft.id),
                    status=status,
                    version=done[draft.id],
                    merged_fields=draft.merged_fields,
                )
            else:
                lost.append(draft)
    if lost:
        _redecide_lost(table, lost)


def _redecide_lost(table: SyncTable, lost: list[Draft]) -> None:
    """Rows another writer changed between phase 1 and the write: one query for their state."""
    fresh = sql.existing_rows(table, [d.id for d in lost])
    for draft in lost:
        current = fresh.get(draft.id)
        if current is None:  # deleted for good meanwhile
            draft.finish(Status.GONE)
        elif draft.mode == Mode.DELETE and current["archived_at"] is not None:
            draft.finish(Status.APPLIED, version=current["version"])
        elif current["archived_at"] is not None:
            draft.finish(Status.GONE, version=current["version"])
        elif not differing(table, draft.values, current) and draft.mode != Mode.DELETE:
            draft.finish(Status.DUPLICATE, version=current["version"])
        else:
            conflict(table, draft, current, conflicting=differing(table, draft.values, current))


def _constraint_error(table: SyncTable, exc: IntegrityError) -> dict[str, str]:
    """The error of every row of a failed statement in an all-or-nothing batch."""
    name = _constraint_name(exc)
    rule = table.constraint_rule(name)
    if rule is not None and rule.batch_error is not None:
        return dict(rule.batch_error)
    return error("constraint", CONSTRAINT.format(constraint=name or "integrity"))


def _constraint_name(exc: IntegrityError) -> str:
    diag = getattr(exc.__cause__, "diag", None)
    return str(getattr(diag, "constraint_name", "") or "")


def _constraint_failure(table: SyncTable, draft: Draft, exc: IntegrityError) -> None:
    """A row replayed on its own tripped a constraint: the table's rule for it reports the row,
    else a foreign key is a missing dependency and anything else a constraint error."""
    name = _constraint_name(exc)
    rule = table.constraint_rule(name)
    if rule is not None:
        rule.report(draft)
    elif "fkey" in name or "_fk_" in name:
        draft.reject([error("dependency_missing", CONSTRAINT.format(constraint=name))])
    else:
        draft.reject([_constraint_error(table, exc)])
