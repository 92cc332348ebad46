"""Deciding and writing a push, set-wise.

Phase 1 (no writes): per table, in dependency order — structural checks, one query for the
pushed ids' current state, one query per referenced table (rows written earlier in the batch
are known without a query), the caller's containers once per container type, then a decision
per row in memory: insert / update / delete / duplicate / gone / conflict / rejected.
A table's ``check_batch`` hook then sees all its decided rows at once (appointments: one
overlap query for the whole batch plus an in-batch check).

Phase 2 (writes): per table one INSERT, one UPDATE and one soft-delete UPDATE, each an
``unnest`` with the version compare-and-swap. Rows missing from RETURNING lost a race since
phase 1 and are re-decided from one more query. A constraint the checks could not see (another
device booked the slot, or corrected the row, a moment ago) aborts the statement: its savepoint
is rolled back and that table's rows are replayed one savepoint each (the slow path).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apikit.rules import RuleError
from sync.columns import FieldError
from sync.push import sql
from sync.push.context import FAILED, PushContext
from sync.push.parsing import PushBatch
from sync.push.rows import (
    SUCCESS,
    Draft,
    Mode,
    RowIn,
    RowInvalidError,
    RowResult,
    Status,
    error,
    server_record,
)
from sync.registry import ConflictPolicy, SyncTable, reference_loader, sync_tables

logger = logging.getLogger(__name__)

UNKNOWN_TABLE = "This table cannot be pushed; pushable tables: {tables}."
DUPLICATE_IN_BATCH = "This id appears more than once for this table in the batch."
FORBIDDEN_ROLE = "Your role may not {action} {table}."
FORBIDDEN_SCOPE = "You do not have {level} access to this row's {container}."
READ_ONLY = "{table} are managed on the server and cannot be pushed."
APPEND_ONLY = (
    "{table} are append-only: record a correction as a new row with 'supersedes_id' "
    "(changes are accepted only from the author within {minutes} minutes)."
)
BATCH_ABORTED = "Not written: another row of this all-or-nothing batch failed."
CONSTRAINT = "The row conflicts with data written at the same time ({constraint})."

_DEFAULT_GRACE = dt.timedelta(minutes=15)


def append_only_grace() -> dt.timedelta:
    seconds = getattr(settings, "SYNC_APPEND_ONLY_GRACE_SECONDS", None)
    return dt.timedelta(seconds=int(seconds)) if seconds is not None else _DEFAULT_GRACE


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
    drafts_by_table: dict[str, list[Draft]] = {}
    early: dict[tuple[str, int], RowResult] = {}
    for name in _ordered(batch.tables, tables):
        spec = tables.get(name)
        rows = batch.tables[name]
        if spec is None:
            for row in rows:
                early[(name, row.index)] = _result_for_unknown(name, row, tables)
            continue
        drafts_by_table[name] = _decide_table(spec, rows, ctx, early)

    outcome = PushOutcome(results=[], summary={})
    pending = [d for drafts in drafts_by_table.values() for d in drafts if d.mode is not None]
    failed = [d for drafts in drafts_by_table.values() for d in drafts if _failed(d)]
    if batch.atomic == "all" and (failed or early):
        _abort_pending(pending)
    elif batch.atomic == "all":
        try:
            with transaction.atomic():
                _write_all(drafts_by_table, tables, ctx, outcome, strict=True)
                if any(_failed(d) for drafts in drafts_by_table.values() for d in drafts):
                    raise _AbortError
        except _AbortError:
            for drafts in drafts_by_table.values():
                for draft in drafts:
                    if draft.result is None or draft.result.status in SUCCESS:
                        draft.finish(
                            Status.REJECTED, errors=[error("batch_aborted", BATCH_ABORTED)]
                        )
            outcome.written_by_mode = {}
    else:
        _write_all(drafts_by_table, tables, ctx, outcome, strict=False)

    for name, rows in batch.tables.items():
        by_index = {d.row.index: d for d in drafts_by_table.get(name, [])}
        for row in rows:
            decided = by_index.get(row.index)
            result = early.get((name, row.index)) or (decided.result if decided else None)
            if result is None:  # pragma: no cover - every row is decided above
                raise RuntimeError(f"undecided row {name}[{row.index}]")
            outcome.results.append(result)
    summary = {str(status): 0 for status in Status}
    for result in outcome.results:
        summary[str(result.status)] += 1
    outcome.summary = summary
    return outcome


def _ordered(pushed: dict[str, list[RowIn]], tables: dict[str, SyncTable]) -> list[str]:
    """The pushed tables in dependency order (parents first, so a batch may create a field and
    its plantings), then unknown names."""
    known = [name for name in tables if name in pushed]
    return known + [name for name in pushed if name not in tables]


def _result_for_unknown(table: str, row: RowIn, tables: dict[str, SyncTable]) -> RowResult:
    pushable = ", ".join(
        sorted(
            name
            for name, spec in tables.items()
            if spec.conflict_policy != ConflictPolicy.SERVER_WINS
        )
    )
    return RowResult(
        table=table,
        id=str(row.id or row.raw_id),
        status=Status.REJECTED,
        errors=[error("unknown_table", UNKNOWN_TABLE.format(tables=pushable))],
    )


def _failed(draft: Draft) -> bool:
    return draft.result is not None and draft.result.status not in SUCCESS


def _abort_pending(pending: Iterable[Draft]) -> None:
    for draft in pending:
        draft.finish(Status.REJECTED, errors=[error("batch_aborted", BATCH_ABORTED)])


# --- phase 1: decide ---------------------------------------------------------------------------


def _decide_table(
    spec: SyncTable, rows: list[RowIn], ctx: PushContext, early: dict[tuple[str, int], RowResult]
) -> list[Draft]:
    seen: set[uuid.UUID] = set()
    valid: list[RowIn] = []
    for row in rows:
        if row.errors or row.id is None:
            early[(spec.name, row.index)] = RowResult(
                table=spec.name,
                id=str(row.id or row.raw_id),
                status=Status.REJECTED,
                errors=row.errors,
            )
        elif row.id in seen:
            early[(spec.name, row.index)] = RowResult(
                table=spec.name,
                id=str(row.id),
                status=Status.REJECTED,
                errors=[error("duplicate_in_batch", DUPLICATE_IN_BATCH, "id")],
            )
        else:
            seen.add(row.id)
            valid.append(row)
    existing = sql.existing_rows(spec, [row.id for row in valid if row.id is not None])
    sent_by_row = {row.index: _parse_fields(spec, row) for row in valid}
    _load_refs(spec, valid, sent_by_row, existing, ctx)
    if spec.preload is not None:
        spec.preload(valid, ctx)
    drafts = []
    merges: list[tuple[Draft, dict[str, Any]]] = []
    for row in valid:
        if row.id is None:  # pragma: no cover - filtered above
            continue
        draft = Draft(row=row, table=spec.name, id=row.id, existing=existing.get(row.id))
        sent = sent_by_row[row.index]
        _decide(spec, draft, sent, ctx)
        if draft.mode is None and draft.result is None:
            merges.append((draft, sent[0]))  # stale base on a field_merge table
        else:
            _remember(spec, draft, ctx)
        drafts.append(draft)
    if merges:
        _field_merges(spec, merges, ctx)
    if spec.check_batch is not None:
        spec.check_batch(drafts, ctx)
    return drafts


def _parse_fields(spec: SyncTable, row: RowIn) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The client-writable fields the row sent, parsed; unknown and server-managed names are
    ignored (WatermelonDB sends every local column)."""
    by_name = spec.columns_by_name
    values: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for key, raw in row.fields.items():
        column = by_name.get(key)
        if column is None or (key != column.name and column.name in row.fields):
            continue
        try:
            values[column.name] = column.parse(raw, wmdb=row.wmdb)
        except FieldError as exc:
            errors.append(exc.as_dict())
    return values, errors


def _load_refs(
    spec: SyncTable,
    rows: list[RowIn],
    sent_by_row: dict[int, tuple[dict[str, Any], list[dict[str, str]]]],
    existing: dict[uuid.UUID, dict[str, Any]],
    ctx: PushContext,
) -> None:
    """One query per referenced table for the ids not already known (batch rows included);
    ids of the existing rows' references too, for the scope check of updates."""
    wanted: dict[str, set[uuid.UUID]] = defaultdict(set)
    for column in spec.columns:
        if column.ref is None:
            continue
        for row in rows:
            value = sent_by_row[row.index][0].get(column.name)
            if isinstance(value, uuid.UUID):
                wanted[column.ref].add(value)
        for current in existing.values():
            value = current.get(column.name)
            if isinstance(value, uuid.UUID):
                wanted[column.ref].add(value)
    for table, ids in wanted.items():
        known = ctx.refs.get(table, {})
        missing = sorted(ref_id for ref_id in ids if ref_id not in known)
        if not missing:
            continue
        db_table, select = reference_loader(table)
        for info in sql.referenced_rows(db_table, select, missing):
            ctx.remember(table, info["id"], info)


def _decide(
    spec: SyncTable,
    draft: Draft,
    sent_and_errors: tuple[dict[str, Any], list[dict[str, str]]],
    ctx: PushContext,
) -> None:
    row = draft.row
    sent, parse_errors = sent_and_errors
    existing = draft.existing
    label = spec.name
    if spec.conflict_policy == ConflictPolicy.SERVER_WINS:
        draft.reject([error("read_only", READ_ONLY.format(table=label.capitalize()))])
        return
    if row.op == "delete":
        _decide_delete(spec, draft, ctx)
        return
    if existing is not None and existing["archived_at"] is not None:
        draft.finish(Status.GONE, version=existing["version"])
        return
    # A create needs ``add``; ``change`` is checked once the row is known not to be a
    # duplicate (a retried create of a row the server already has writes nothing).
    if existing is None and not ctx.user.has_perm(spec.perm("add")):
        draft.reject([error("forbidden", FORBIDDEN_ROLE.format(action="add", table=label))])
        return
    if parse_errors:
        draft.reject(parse_errors)
        return

    values: dict[str, Any] = {"id": draft.id}
    if existing is None:
        missing: list[dict[str, str]] = []
        for column in spec.columns:
            if column.name in sent:
                values[column.name] = sent[column.name]
            else:
                try:
                    values[column.name] = column.missing()
                except FieldError as exc:
                    missing.append(exc.as_dict())
        if missing:
            draft.reject(missing)
            return
    else:
        for column in spec.columns:
            values[column.name] = sent.get(column.name, existing[column.name])
        for derived in spec.derived:
            values[derived.name] = existing[derived.name]
    for derived in spec.derived:
        values.setdefault(derived.name, None)
    draft.values = values

    ref_errors = _ref_errors(spec, values)(ctx)
    if ref_errors:
        draft.reject(ref_errors)
        return
    clean_errors = _clean_errors(spec, draft, ctx)
    if clean_errors:
        draft.reject(clean_errors)
        return

    creating_container = existing is None and spec.container_model is spec.model
    if not creating_container and not _allowed(spec, values, ctx):
        draft.reject([_scope_error(spec)])
        return
    if existing is None:
        draft.mode = Mode.INSERT
        return

    if not _allowed(spec, existing, ctx):
        draft.reject([_scope_error(spec)])
        return
    differing = _differing(spec, values, existing)
    if not differing:
        draft.finish(Status.DUPLICATE, version=existing["version"])
        return
    if spec.conflict_policy != ConflictPolicy.APPEND_ONLY and not ctx.user.has_perm(
        spec.perm("change")
    ):
        draft.reject([error("forbidden", FORBIDDEN_ROLE.format(action="change", table=label))])
        return
    if spec.conflict_policy == ConflictPolicy.APPEND_ONLY and not _within_grace(existing, ctx):
        draft.reject(
            [
                error(
                    "append_only",
                    APPEND_ONLY.format(
                        table=label.capitalize(),
                        minutes=int(append_only_grace().total_seconds() // 60),
                    ),
                )
            ]
        )
        return
    # A create of an id the server already holds, with other values: an update of version 1.
    base = row.base_version if row.base_version is not None else 1
    if base == existing["version"]:
        draft.mode = Mode.UPDATE
        draft.expected_version = base
        return
    if spec.conflict_policy == ConflictPolicy.FIELD_MERGE:
        return  # decided with the other stale rows of the table (one history query)
    _conflict(spec, draft, existing, conflicting=sorted(set(differing) & set(sent) or differing))


def _ref_errors(
    spec: SyncTable, values: dict[str, Any]
) -> Callable[[PushContext], list[dict[str, str]]]:
    def check(ctx: PushContext) -> list[dict[str, str]]:
        errors = []
        for column in spec.columns:
            value = values.get(column.name)
            if column.ref is None or value is None:
                continue
            try:
                ctx.check_ref(column.ref, column=column.name, value=value)
            except FieldError as exc:
                errors.append(exc.as_dict())
        return errors

    return check


def _clean_errors(spec: SyncTable, draft: Draft, ctx: PushContext) -> list[dict[str, str]]:
    """The table's domain rules (``clean``), their errors naming wire columns."""
    if spec.clean is None:
        return []
    try:
        spec.clean(draft, ctx)
    except RowInvalidError as exc:
        return [_rule_error(spec, item) for item in exc.errors]
    except RuleError as exc:
        return [_rule_error(spec, exc)]
    return []


def _rule_error(spec: SyncTable, exc: RuleError) -> dict[str, str]:
    return {"code": exc.code, "field": spec.wire_name(exc.field), "msg": exc.message}


def _allowed(spec: SyncTable, values: dict[str, Any], ctx: PushContext) -> bool:
    """Whether the user holds the table's write level on the container of the row ``values``."""
    if spec.container_model is None or spec.container_of is None:
        return False  # registry.register() refuses pushed tables without a container
    return ctx.allowed(spec.container_model, spec.write_level, spec.container_of(values, ctx))


def _scope_error(spec: SyncTable) -> dict[str, str]:
    container = spec.container_model._meta.model_name if spec.container_model else "container"
    return error(
        "forbidden", FORBIDDEN_SCOPE.format(level=spec.write_level.value, container=container)
    )


def _within_grace(existing: dict[str, Any], ctx: PushContext) -> bool:
    return bool(
        existing.get("created_by_id") == ctx.user.pk
        and ctx.now - existing["created_at"] <= append_only_grace()
    )


def _differing(spec: SyncTable, values: dict[str, Any], existing: dict[str, Any]) -> list[str]:
    return [name for name in spec.comparable if values.get(name) != existing.get(name)]


def _conflict(
    spec: SyncTable, draft: Draft, existing: dict[str, Any], *, conflicting: list[str]
) -> None:
    draft.finish(
        Status.CONFLICT,
        version=existing["version"],
        server_record=server_record(spec, existing),
        conflicting_fields=conflicting,
        reason="version_mismatch",
    )


def _field_merges(
    spec: SyncTable, merges: list[tuple[Draft, dict[str, Any]]], ctx: PushContext
) -> None:
    """Stale rows of a field_merge table: apply the client's changed fields on top of the
    server's row when none of them was changed on the server since ``base_version`` (from the
    trigger-written field history); otherwise a conflict naming the overlap. A history with a
    gap (changes older than the history) is treated as "everything changed"."""
    history = sql.fields_changed_since(
        spec.db_table,
        [draft.id for draft, _ in merges],
        [draft.row.base_version or 1 for draft, _ in merges],
    )
    for draft, sent in merges:
        existing = draft.existing
        if existing is None:  # pragma: no cover - only stale updates are merged
            continue
        base = draft.row.base_version or 1
        client_changed = {
            name
            for name in (draft.row.changed if draft.row.changed is not None else set(sent))
            if name in sent
        }
        changed, versions = history.get(draft.id, (set(), 0))
        if base > existing["version"] or versions < existing["version"] - base:
            server_changed = {column.name for column in spec.columns}
        else:
            server_changed = changed
        overlap = sorted(client_changed & server_changed)
        if overlap or not client_changed:
            _conflict(spec, draft, existing, conflicting=overlap or sorted(client_changed))
            _remember(spec, draft, ctx)
            continue
        values = dict(draft.values)
        for column in spec.columns:
            if column.name not in client_changed:
                values[column.name] = existing[column.name]
        draft.values = values
        # Derived columns (a field's area) follow the merged values.
        if _clean_errors(spec, draft, ctx):
            _conflict(spec, draft, existing, conflicting=sorted(client_changed))
            _remember(spec, draft, ctx)
            continue
        draft.mode = Mode.UPDATE
        draft.expected_version = existing["version"]
        draft.merged_fields = sorted(client_changed)
        _remember(spec, draft, ctx)


def _decide_delete(spec: SyncTable, draft: Draft, ctx: PushContext) -> None:
    existing = draft.existing
    if not ctx.user.has_perm(spec.perm("delete")):
        draft.reject([error("forbidden", FORBIDDEN_ROLE.format(action="delete", table=spec.name))])
        return
    if existing is None:
        draft.finish(Status.APPLIED)  # deleting an unknown id is a no-op (WatermelonDB)
        return
    if existing["archived_at"] is not None:
        draft.finish(Status.APPLIED, version=existing["version"])
        return
    if not _allowed(spec, existing, ctx):
        draft.reject([_scope_error(spec)])
        return
    if spec.conflict_policy == ConflictPolicy.APPEND_ONLY and not _within_grace(existing, ctx):
        draft.reject(
            [
                error(
                    "append_only",
                    APPEND_ONLY.format(
                        table=spec.name.capitalize(),
                        minutes=int(append_only_grace().total_seconds() // 60),
                    ),
                )
            ]
        )
        return
    base = draft.row.base_version
    if base is not None and base != existing["version"]:
        _conflict(spec, draft, existing, conflicting=[])
        return
    draft.mode = Mode.DELETE
    draft.expected_version = existing["version"]


def _remember(spec: SyncTable, draft: Draft, ctx: PushContext) -> None:
    """Later rows (and tables) of the batch see this row as it will be after the write."""
    if draft.mode in (Mode.INSERT, Mode.UPDATE) and spec.ref_info is not None:
        ctx.remember(spec.name, draft.id, spec.ref_info(draft.values, ctx))
        target = draft.values.get("supersedes_id")
        if target is not None:
            info = ctx.ref(spec.name, target)
            if info is not None and info is not FAILED:
                ctx.remember(spec.name, target, {**info, "corrected": True})
    elif draft.mode == Mode.DELETE or (
        draft.mode is None
        and draft.result is not None
        and draft.result.status != Status.DUPLICATE
        and (draft.existing is None or draft.result.status == Status.GONE)
    ):
        ctx.remember(spec.name, draft.id, FAILED)


# --- phase 2: write ----------------------------------------------------------------------------


def _write_all(
    drafts_by_table: dict[str, list[Draft]],
    tables: dict[str, SyncTable],
    ctx: PushContext,
    outcome: PushOutcome,
    *,
    strict: bool,
) -> None:
    for name, drafts in drafts_by_table.items():
        spec = tables[name]
        pending = [d for d in drafts if d.mode is not None]
        if not pending:
            continue
        try:
            with transaction.atomic():
                _write_table(spec, pending, ctx)
        except IntegrityError as exc:
            if strict:
                for draft in pending:
                    draft.finish(Status.REJECTED, errors=[_constraint_error(spec, exc)])
                raise _AbortError from exc
            logger.warning("sync push slow path for %s: %s", name, exc)
            outcome.slow_path_tables.append(name)
            for draft in pending:
                try:
                    with transaction.atomic():
                        _write_table(spec, [draft], ctx)
                except IntegrityError as row_exc:
                    _constraint_failure(spec, draft, row_exc)
        by_mode: dict[Mode, list[uuid.UUID]] = defaultdict(list)
        for draft in pending:
            if draft.written is not None:
                by_mode[draft.written].append(draft.id)
        outcome.written_by_mode[name] = dict(by_mode)
        written = [row_id for ids in by_mode.values() for row_id in ids]
        if spec.after_write is not None and written:
            spec.after_write(written)


def _write_table(spec: SyncTable, drafts: list[Draft], ctx: PushContext) -> None:
    user_id = ctx.user.pk
    inserts = [d for d in drafts if d.mode == Mode.INSERT]
    updates = [d for d in drafts if d.mode == Mode.UPDATE]
    deletes = [d for d in drafts if d.mode == Mode.DELETE]
    inserted = sql.insert_rows(
        spec, [d.id for d in inserts], [d.values for d in inserts], user_id=user_id
    )
    updated = sql.update_rows(
        spec,
        [d.id for d in updates],
        [d.expected_version or 0 for d in updates],
        [d.values for d in updates],
        user_id=user_id,
    )
    deleted = sql.delete_rows(
        spec, [d.id for d in deletes], [d.expected_version or 0 for d in deletes], user_id=user_id
    )
    lost: list[Draft] = []
    for group, done in ((inserts, inserted), (updates, updated), (deletes, deleted)):
        for draft in group:
            if draft.id in done:
                draft.written = draft.mode
                status = Status.MERGED if draft.merged_fields else Status.APPLIED
                draft.result = RowResult(
                    table=spec.name,
                    id=str(draft.id),
                    status=status,
                    version=done[draft.id],
                    merged_fields=draft.merged_fields,
                )
            else:
                lost.append(draft)
    if lost:
        _redecide_lost(spec, lost)


def _redecide_lost(spec: SyncTable, lost: list[Draft]) -> None:
    """Rows another writer changed between phase 1 and the write: one query for their state."""
    fresh = sql.existing_rows(spec, [d.id for d in lost])
    for draft in lost:
        current = fresh.get(draft.id)
        if current is None:  # deleted for good meanwhile
            draft.finish(Status.GONE)
        elif draft.mode == Mode.DELETE and current["archived_at"] is not None:
            draft.finish(Status.APPLIED, version=current["version"])
        elif current["archived_at"] is not None:
            draft.finish(Status.GONE, version=current["version"])
        elif not _differing(spec, draft.values, current) and draft.mode != Mode.DELETE:
            draft.finish(Status.DUPLICATE, version=current["version"])
        else:
            _conflict(spec, draft, current, conflicting=_differing(spec, draft.values, current))


def _constraint_error(spec: SyncTable, exc: IntegrityError) -> dict[str, str]:
    """The error of every row of a failed statement in an all-or-nothing batch."""
    name = _constraint_name(exc)
    rule = spec.constraint_rule(name)
    if rule is not None and rule.batch_error is not None:
        return dict(rule.batch_error)
    return error("constraint", CONSTRAINT.format(constraint=name or "integrity"))


def _constraint_name(exc: IntegrityError) -> str:
    diag = getattr(exc.__cause__, "diag", None)
    return str(getattr(diag, "constraint_name", "") or "")


def _constraint_failure(spec: SyncTable, draft: Draft, exc: IntegrityError) -> None:
    """A row replayed on its own tripped a constraint: the table's rule for it reports the row,
    else a foreign key is a missing dependency and anything else a constraint error."""
    name = _constraint_name(exc)
    rule = spec.constraint_rule(name)
    if rule is not None:
        rule.report(draft)
    elif "fkey" in name or "_fk_" in name:
        draft.reject([error("dependency_missing", CONSTRAINT.format(constraint=name))])
    else:
        draft.reject([_constraint_error(spec, exc)])
