"""Deciding and writing a push, set-wise.

Phase 1 (no writes): per table, in dependency order — structural checks, one query for the
pushed ids' current state, one query per referenced table (rows written earlier in the batch
are known without a query), the caller's containers once per container type, then a decision
per row in memory: insert / update / delete / duplicate / gone / conflict / rejected.
Appointments get one overlap query for the whole batch plus an in-batch check.

Phase 2 (writes): per table one INSERT, one UPDATE and one soft-delete UPDATE, each an
``unnest`` with the version compare-and-swap. Rows missing from RETURNING lost a race since
phase 1 and are re-decided from one more query. A constraint the checks could not see (another
device booked the slot, or corrected the row, a moment ago) aborts the statement: its savepoint
is rolled back and that table's rows are replayed one savepoint each (the slow path).
"""

from __future__ import annotations

import bisect
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

from sync.push import sql
from sync.push.columns import FieldError
from sync.push.context import FAILED, PushContext
from sync.push.parsing import PushBatch
from sync.push.rows import SUCCESS, Draft, Mode, RowIn, RowResult, Status, error
from sync.push.tables import TABLES, Policy, RowInvalidError, TableSpec, ref_loader

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
SLOT_TAKEN = "The clinician already has an appointment overlapping this time."
CONSTRAINT = "The row conflicts with data written at the same time ({constraint})."

_NO_DOUBLE_BOOKING = "clinical_appointment_no_double_booking"
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
    drafts_by_table: dict[str, list[Draft]] = {}
    early: dict[tuple[str, int], RowResult] = {}
    for name in _ordered(batch.tables):
        spec = TABLES.get(name)
        rows = batch.tables[name]
        if spec is None:
            for row in rows:
                early[(name, row.index)] = _result_for_unknown(name, row)
            continue
        drafts_by_table[name] = _decide_table(spec, rows, ctx, early)
    appointments = drafts_by_table.get("appointments")
    if appointments:
        _check_slots(appointments)

    outcome = PushOutcome(results=[], summary={})
    pending = [d for drafts in drafts_by_table.values() for d in drafts if d.mode is not None]
    failed = [d for drafts in drafts_by_table.values() for d in drafts if _failed(d)]
    if batch.atomic == "all" and (failed or early):
        _abort_pending(pending)
    elif batch.atomic == "all":
        try:
            with transaction.atomic():
                _write_all(drafts_by_table, ctx, outcome, strict=True)
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
        _write_all(drafts_by_table, ctx, outcome, strict=False)

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


def _ordered(tables: dict[str, list[RowIn]]) -> list[str]:
    known = [name for name in TABLES if name in tables]
    return known + [name for name in tables if name not in TABLES]


def _result_for_unknown(table: str, row: RowIn) -> RowResult:
    pushable = ", ".join(name for name, spec in TABLES.items() if spec.policy != Policy.SERVER_WINS)
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
    spec: TableSpec, rows: list[RowIn], ctx: PushContext, early: dict[tuple[str, int], RowResult]
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
    return drafts


def _parse_fields(spec: TableSpec, row: RowIn) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The client-writable fields the row sent, parsed; unknown and server-managed names are
    ignored (WatermelonDB sends every local column)."""
    by_name = spec.by_name
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
    spec: TableSpec,
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
        db_table, select = ref_loader(table)
        for info in sql.referenced_rows(db_table, select, missing):
            ctx.remember(table, info["id"], info)


def _decide(
    spec: TableSpec,
    draft: Draft,
    sent_and_errors: tuple[dict[str, Any], list[dict[str, str]]],
    ctx: PushContext,
) -> None:
    row = draft.row
    sent, parse_errors = sent_and_errors
    existing = draft.existing
    label = spec.name
    if spec.policy == Policy.SERVER_WINS:
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
    if spec.clean is not None:
        try:
            spec.clean(draft, ctx)
        except RowInvalidError as exc:
            draft.reject([item.as_dict() for item in exc.errors])
            return
        except FieldError as exc:
            draft.reject([exc.as_dict()])
            return

    container = spec.container_of(values, ctx)
    creating_container = existing is None and spec.container_model is spec.model
    if not creating_container and not ctx.allowed(
        spec.container_model, spec.write_level, container
    ):
        draft.reject([_scope_error(spec)])
        return
    if existing is None:
        draft.mode = Mode.INSERT
        return

    if not ctx.allowed(spec.container_model, spec.write_level, spec.container_of(existing, ctx)):
        draft.reject([_scope_error(spec)])
        return
    differing = _differing(spec, values, existing)
    if not differing:
        draft.finish(Status.DUPLICATE, version=existing["version"])
        return
    if spec.policy != Policy.APPEND_ONLY and not ctx.user.has_perm(spec.perm("change")):
        draft.reject([error("forbidden", FORBIDDEN_ROLE.format(action="change", table=label))])
        return
    if spec.policy == Policy.APPEND_ONLY and not _within_grace(existing, ctx):
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
    if spec.policy == Policy.FIELD_MERGE:
        return  # decided with the other stale rows of the table (one history query)
    _conflict(spec, draft, existing, conflicting=sorted(set(differing) & set(sent) or differing))


def _ref_errors(
    spec: TableSpec, values: dict[str, Any]
) -> Callable[[PushContext], list[dict[str, str]]]:
    def check(ctx: PushContext) -> list[dict[str, str]]:
        from sync.push.tables import check_ref

        errors = []
        for column in spec.columns:
            value = values.get(column.name)
            if column.ref is None or value is None:
                continue
            try:
                check_ref(ctx, table=column.ref, column=column.name, value=value)
            except FieldError as exc:
                errors.append(exc.as_dict())
        return errors

    return check


def _scope_error(spec: TableSpec) -> dict[str, str]:
    return error(
        "forbidden",
        FORBIDDEN_SCOPE.format(
            level=spec.write_level.value, container=spec.container_model._meta.model_name
        ),
    )


def _within_grace(existing: dict[str, Any], ctx: PushContext) -> bool:
    return bool(
        existing.get("created_by_id") == ctx.user.pk
        and ctx.now - existing["created_at"] <= append_only_grace()
    )


def _comparable(spec: TableSpec) -> list[str]:
    return [column.name for column in spec.columns] + [derived.name for derived in spec.derived]


def _differing(spec: TableSpec, values: dict[str, Any], existing: dict[str, Any]) -> list[str]:
    return [name for name in _comparable(spec) if values.get(name) != existing.get(name)]


def _conflict(
    spec: TableSpec, draft: Draft, existing: dict[str, Any], *, conflicting: list[str]
) -> None:
    draft.finish(
        Status.CONFLICT,
        version=existing["version"],
        server_record=server_record(spec, existing),
        conflicting_fields=conflicting,
        reason="version_mismatch",
    )


def _field_merges(
    spec: TableSpec, merges: list[tuple[Draft, dict[str, Any]]], ctx: PushContext
) -> None:
    """Stale rows of a field_merge table: apply the client's changed fields on top of the
    server's row when none of them was changed on the server since ``base_version`` (from the
    trigger-written field history); otherwise a conflict naming the overlap. A history with a
    gap (changes older than the history) is treated as "everything changed"."""
    history = sql.fields_changed_since(
        spec.table,
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
        if spec.clean is not None:
            try:  # derived columns (a field's area) follow the merged values
                spec.clean(draft, ctx)
            except (RowInvalidError, FieldError):
                _conflict(spec, draft, existing, conflicting=sorted(client_changed))
                _remember(spec, draft, ctx)
                continue
        draft.mode = Mode.UPDATE
        draft.expected_version = existing["version"]
        draft.merged_fields = sorted(client_changed)
        _remember(spec, draft, ctx)


def _decide_delete(spec: TableSpec, draft: Draft, ctx: PushContext) -> None:
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
    if not ctx.allowed(spec.container_model, spec.write_level, spec.container_of(existing, ctx)):
        draft.reject([_scope_error(spec)])
        return
    if spec.policy == Policy.APPEND_ONLY and not _within_grace(existing, ctx):
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


def _remember(spec: TableSpec, draft: Draft, ctx: PushContext) -> None:
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


def _check_slots(drafts: list[Draft]) -> None:
    """No double booking: one overlap query against the server's appointments, and an in-batch
    check (the earlier row of the request keeps the slot)."""
    live = [
        d
        for d in drafts
        if d.mode in (Mode.INSERT, Mode.UPDATE) and d.values["status"] != "cancelled"
    ]
    touched = [d.id for d in drafts if d.mode is not None]
    overlaps = sql.appointment_overlaps(
        table="clinical_appointment",
        ids=[d.id for d in live],
        clinicians=[d.values["clinician_id"] for d in live],
        starts=[d.values["starts_at"] for d in live],
        ends=[d.values["ends_at"] for d in live],
        exclude=touched,
    )
    taken: dict[uuid.UUID, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for draft in live:
        if draft.id in overlaps:
            _slot_taken(draft, [str(overlaps[draft.id])])
            continue
        start, end = draft.values["starts_at"], draft.values["ends_at"]
        booked = taken[draft.values["clinician_id"]]
        position = bisect.bisect_left(booked, (start, end))
        clash = (position > 0 and booked[position - 1][1] > start) or (
            position < len(booked) and booked[position][0] < end
        )
        if clash:
            _slot_taken(draft, [])
            continue
        booked.insert(position, (start, end))


def _slot_taken(draft: Draft, others: list[str]) -> None:
    existing = draft.existing
    draft.finish(
        Status.CONFLICT,
        version=existing["version"] if existing else None,
        reason="slot_taken",
        errors=[error("appointment_conflict", SLOT_TAKEN, "starts_at")],
        conflicting_fields=["clinician_id", "starts_at", "ends_at"],
        server_record=server_record(TABLES["appointments"], existing) if existing else None,
    )


def server_record(spec: TableSpec, row: dict[str, Any]) -> dict[str, Any]:
    record = {"id": str(row["id"]), "version": row["version"], "updated_at": row["updated_at"]}
    for name in _comparable(spec):
        record[name] = row.get(name)
    if row.get("archived_at") is not None:
        record["deleted"] = True
    return record


# --- phase 2: write ----------------------------------------------------------------------------


def _write_all(
    drafts_by_table: dict[str, list[Draft]], ctx: PushContext, outcome: PushOutcome, *, strict: bool
) -> None:
    for name, drafts in drafts_by_table.items():
        spec = TABLES[name]
        pending = [d for d in drafts if d.mode is not None]
        if not pending:
            continue
        try:
            with transaction.atomic():
                _write_table(spec, pending, ctx)
        except IntegrityError as exc:
            if strict:
                for draft in pending:
                    draft.finish(Status.REJECTED, errors=[_constraint_error(exc)])
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
        if name == "appointments" and written:
            _reminders(written)


def _write_table(spec: TableSpec, drafts: list[Draft], ctx: PushContext) -> None:
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


def _redecide_lost(spec: TableSpec, lost: list[Draft]) -> None:
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


def _constraint_error(exc: IntegrityError) -> dict[str, str]:
    name = _constraint_name(exc)
    if name == _NO_DOUBLE_BOOKING:
        return error("appointment_conflict", SLOT_TAKEN, "starts_at")
    return error("constraint", CONSTRAINT.format(constraint=name or "integrity"))


def _constraint_name(exc: IntegrityError) -> str:
    diag = getattr(exc.__cause__, "diag", None)
    return str(getattr(diag, "constraint_name", "") or "")


def _constraint_failure(spec: TableSpec, draft: Draft, exc: IntegrityError) -> None:
    name = _constraint_name(exc)
    if name == _NO_DOUBLE_BOOKING:
        _slot_taken(draft, [])
    elif name.endswith("one_live_correction"):
        draft.reject(
            [
                FieldError(
                    "supersedes_id", "This row already has a correction.", "already_superseded"
                ).as_dict()
            ]
        )
    elif "fkey" in name or "_fk_" in name:
        draft.reject([error("dependency_missing", CONSTRAINT.format(constraint=name))])
    else:
        draft.reject([_constraint_error(exc)])


def _reminders(appointment_ids: list[uuid.UUID]) -> None:
    """Pushed appointments get their SMS reminders in the same transaction."""
    try:
        from clinical import reminders
    except ImportError:  # clinical.reminders not installed: nothing to schedule
        return
    sync_for = getattr(reminders, "reminders_sync_for_appointments", None)
    if sync_for is not None:
        sync_for(appointment_ids=appointment_ids)
