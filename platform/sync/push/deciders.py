"""How one pushed row is decided, without writing: insert / update / delete, or a result
(duplicate, gone, conflict, rejected). sync-protocol.md §6.3 has the policies.

Every row goes through the same steps, written once below: permission, parsing (defaults,
values merged over the server's row), references, the table's own rules (``clean``: the domain's
rule functions), scope on the container. What differs per conflict policy is small, one decider
each:

- ``reject``: a stale ``base_version`` is a conflict with the server's copy;
- ``field_merge``: a stale row is left undecided and merged with the table's other stale rows
  (``merge_stale``, one history query);
- ``append_only``: changes and deletes only by the row's author within the grace period;
- ``server_wins``: every push is rejected ``read_only``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from apikit.rules import RuleError
from sync.columns import FieldError
from sync.push import sql
from sync.push.context import FAILED, PushContext
from sync.push.rows import Draft, Mode, RowIn, RowInvalidError, Status, error, server_record
from sync.registry import ConflictPolicy, SyncTable

FORBIDDEN_ROLE = "Your role may not {action} {table}."
FORBIDDEN_SCOPE = "You do not have {level} access to this row's {container}."
READ_ONLY = "{table} are managed on the server and cannot be pushed."
APPEND_ONLY = (
    "{table} are append-only: record a correction as a new row with 'supersedes_id' "
    "(changes are accepted only from the author within {minutes} minutes)."
)

_DEFAULT_GRACE = dt.timedelta(minutes=15)


def append_only_grace() -> dt.timedelta:
    seconds = getattr(settings, "SYNC_APPEND_ONLY_GRACE_SECONDS", None)
    return dt.timedelta(seconds=int(seconds)) if seconds is not None else _DEFAULT_GRACE


@dataclass(frozen=True)
class Sent:
    """The client-writable fields a row sent, parsed, and the values that failed to parse."""

    values: dict[str, Any]
    errors: list[dict[str, str]]


# A policy's check that the caller may change an existing row (False: the row is rejected).
ChangeCheck = Callable[[SyncTable, Draft, PushContext], bool]
Decider = Callable[[SyncTable, Draft, Sent, PushContext], None]


# --- shared steps ------------------------------------------------------------------------------


def parse_fields(table: SyncTable, row: RowIn) -> Sent:
    """Unknown and server-managed names are ignored (WatermelonDB sends every local column); an
    alias counts only when the wire name is not sent too."""
    values: dict[str, Any] = {}
    errors: list[dict[str, str]] = []
    for key, raw in row.fields.items():
        column = table.columns_by_name.get(key)
        if column is None or (key != column.name and column.name in row.fields):
            continue
        try:
            values[column.name] = column.parse(raw, wmdb=row.wmdb)
        except FieldError as exc:
            errors.append(exc.as_dict())
    return Sent(values, errors)


def _forbidden(table: SyncTable, draft: Draft, action: str) -> None:
    draft.reject([error("forbidden", FORBIDDEN_ROLE.format(action=action, table=table.name))])


def _permitted(table: SyncTable, draft: Draft, ctx: PushContext, action: str) -> bool:
    if ctx.user.has_perm(table.perm(action)):
        return True
    _forbidden(table, draft, action)
    return False


def _fill_values(table: SyncTable, draft: Draft, sent: Sent) -> bool:
    """Every column's value: sent, else the server's (an update) or the default (a create, where
    a required column missing is an error); derived columns start from the server's row."""
    if sent.errors:
        draft.reject(sent.errors)
        return False
    existing = draft.existing
    values: dict[str, Any] = {"id": draft.id}
    missing: list[dict[str, str]] = []
    for column in table.columns:
        if column.name in sent.values:
            values[column.name] = sent.values[column.name]
        elif existing is not None:
            values[column.name] = existing[column.name]
        else:
            try:
                values[column.name] = column.missing()
            except FieldError as exc:
                missing.append(exc.as_dict())
    if missing:
        draft.reject(missing)
        return False
    for derived in table.derived:
        values[derived.name] = existing[derived.name] if existing is not None else None
    draft.values = values
    return True


def _refs_found(table: SyncTable, draft: Draft, ctx: PushContext) -> bool:
    """Every foreign key names a row the caller may see, that is live and not failed in this
    batch (loaded beforehand with one query per referenced table)."""
    errors = []
    for column in table.columns:
        value = draft.values.get(column.name)
        if column.ref is None or value is None:
            continue
        try:
            ctx.check_ref(column.ref, column=column.name, value=value)
        except FieldError as exc:
            errors.append(exc.as_dict())
    if errors:
        draft.reject(errors)
    return not errors


def clean_errors(table: SyncTable, draft: Draft, ctx: PushContext) -> list[dict[str, str]]:
    """The table's domain rules (``clean``), their errors naming wire columns."""
    if table.clean is None:
        return []
    try:
        table.clean(draft, ctx)
    except RowInvalidError as exc:
        return [_rule_error(table, item) for item in exc.errors]
    except RuleError as exc:
        return [_rule_error(table, exc)]
    return []


def _rule_error(table: SyncTable, exc: RuleError) -> dict[str, str]:
    return {"code": exc.code, "field": table.wire_name(exc.field), "msg": exc.message}


def _in_scope(table: SyncTable, draft: Draft, row: dict[str, Any], ctx: PushContext) -> bool:
    """Whether the caller holds the table's write level on the container of ``row`` (the row as
    pushed, or as the server holds it)."""
    model, container_of = table.container_model, table.container_of
    if model is not None and container_of is not None:  # always, for pushed tables
        allowed = ctx.allowed(model, table.write_level, container_of(row, ctx))
        if allowed:
            return True
    container = model._meta.model_name if model is not None else "container"
    level = table.write_level.value
    draft.reject([error("forbidden", FORBIDDEN_SCOPE.format(level=level, container=container))])
    return False


def _prepared(table: SyncTable, draft: Draft, sent: Sent, ctx: PushContext) -> bool:
    """The steps every upsert takes whatever the policy, up to its scope check: False once the
    row is decided (gone, rejected)."""
    existing = draft.existing
    if existing is not None and existing["archived_at"] is not None:
        draft.finish(Status.GONE, version=existing["version"])
        return False
    # A create needs ``add``; ``change`` is checked once the row is known not to be a duplicate
    # (a retried create of a row the server already has writes nothing).
    if existing is None and not _permitted(table, draft, ctx, "add"):
        return False
    if not _fill_values(table, draft, sent) or not _refs_found(table, draft, ctx):
        return False
    errors = clean_errors(table, draft, ctx)
    if errors:
        draft.reject(errors)
        return False
    # A device creating a farm cannot hold a grant on it yet.
    creating_container = existing is None and table.container_model is table.model
    return creating_container or _in_scope(table, draft, draft.values, ctx)


def differing(table: SyncTable, values: dict[str, Any], existing: dict[str, Any]) -> list[str]:
    return [name for name in table.comparable if values.get(name) != existing.get(name)]


def _upsert(
    table: SyncTable, draft: Draft, sent: Sent, ctx: PushContext, *, may_change: ChangeCheck
) -> list[str] | None:
    """The shared part of an upsert: a create is an insert; an update is checked against the
    server's row (scope, duplicate, the policy's ``may_change``). Returns the fields an update
    changes while its base version is still to be judged by the policy; None once decided."""
    if not _prepared(table, draft, sent, ctx):
        return None
    existing = draft.existing
    if existing is None:
        draft.mode = Mode.INSERT
        return None
    if not _in_scope(table, draft, existing, ctx):
        return None
    changed = differing(table, draft.values, existing)
    if not changed:
        draft.finish(Status.DUPLICATE, version=existing["version"])
        return None
    return changed if may_change(table, draft, ctx) else None


def _update_if_current(draft: Draft) -> bool:
    """An update whose base is the server's version; a create of an id the server already holds
    (with other values) counts as an update of version 1."""
    existing = draft.existing
    base = draft.row.base_version if draft.row.base_version is not None else 1
    if existing is None or base != existing["version"]:
        return False
    draft.mode = Mode.UPDATE
    draft.expected_version = base
    return True


def conflict(
    table: SyncTable, draft: Draft, existing: dict[str, Any], *, conflicting: list[str]
) -> None:
    draft.finish(
        Status.CONFLICT,
        version=existing["version"],
        server_record=server_record(table, existing),
        conflicting_fields=conflicting,
        reason="version_mismatch",
    )


def _stale_conflict(table: SyncTable, draft: Draft, sent: Sent, changed: list[str]) -> None:
    """A stale base: the conflict names the fields the row sent that differ (else all that do)."""
    if draft.existing is not None:
        overlap = set(changed) & set(sent.values)
        conflict(table, draft, draft.existing, conflicting=sorted(overlap or changed))


def _delete(
    table: SyncTable, draft: Draft, ctx: PushContext, *, may_change: ChangeCheck | None = None
) -> None:
    """Soft delete with the version compare-and-swap; an unknown or already deleted id is
    ``applied`` (WatermelonDB deletes unconditionally)."""
    existing = draft.existing
    if not _permitted(table, draft, ctx, "delete"):
        return
    if existing is None:
        draft.finish(Status.APPLIED)
        return
    if existing["archived_at"] is not None:
        draft.finish(Status.APPLIED, version=existing["version"])
        return
    if not _in_scope(table, draft, existing, ctx):
        return
    if may_change is not None and not may_change(table, draft, ctx):
        return
    base = draft.row.base_version
    if base is not None and base != existing["version"]:
        conflict(table, draft, existing, conflicting=[])
        return
    draft.mode = Mode.DELETE
    draft.expected_version = existing["version"]


def _change_permitted(table: SyncTable, draft: Draft, ctx: PushContext) -> bool:
    return _permitted(table, draft, ctx, "change")


def _author_within_grace(table: SyncTable, draft: Draft, ctx: PushContext) -> bool:
    existing = draft.existing or {}
    if existing.get("created_by_id") == ctx.user.pk and (
        ctx.now - existing["created_at"] <= append_only_grace()
    ):
        return True
    minutes = int(append_only_grace().total_seconds() // 60)
    message = APPEND_ONLY.format(table=table.name.capitalize(), minutes=minutes)
    draft.reject([error("append_only", message)])
    return False


def remember(table: SyncTable, draft: Draft, ctx: PushContext) -> None:
    """Later rows (and tables) of the batch see this row as it will be after the write; a row
    that will not be written is ``FAILED`` for them."""
    if draft.mode in (Mode.INSERT, Mode.UPDATE) and table.ref_info is not None:
        ctx.remember(table.name, draft.id, table.ref_info(draft.values, ctx))
        target = draft.values.get("supersedes_id")
        if target is not None:
            info = ctx.ref(table.name, target)
            if info is not None and info is not FAILED:
                ctx.remember(table.name, target, {**info, "corrected": True})
    elif draft.mode == Mode.DELETE or (
        draft.mode is None
        and draft.result is not None
        and draft.result.status != Status.DUPLICATE
        and (draft.existing is None or draft.result.status == Status.GONE)
    ):
        ctx.remember(table.name, draft.id, FAILED)


# --- one decider per conflict policy -----------------------------------------------------------


def decide_reject(table: SyncTable, draft: Draft, sent: Sent, ctx: PushContext) -> None:
    """``reject`` (patients, appointments): a stale base is a conflict with the server's copy."""
    if draft.row.op == "delete":
        _delete(table, draft, ctx)
        return
    changed = _upsert(table, draft, sent, ctx, may_change=_change_permitted)
    if changed is not None and not _update_if_current(draft):
        _stale_conflict(table, draft, sent, changed)


def decide_field_merge(table: SyncTable, draft: Draft, sent: Sent, ctx: PushContext) -> None:
    """``field_merge`` (farms, fields, plantings): a stale row stays undecided (no mode, no
    result) for ``merge_stale``."""
    if draft.row.op == "delete":
        _delete(table, draft, ctx)
        return
    changed = _upsert(table, draft, sent, ctx, may_change=_change_permitted)
    if changed is not None:
        _update_if_current(draft)


def decide_append_only(table: SyncTable, draft: Draft, sent: Sent, ctx: PushContext) -> None:
    """``append_only`` (observations, harvests): corrections are new rows; the author may still
    change or delete a row within the grace period."""
    if draft.row.op == "delete":
        _delete(table, draft, ctx, may_change=_author_within_grace)
        return
    changed = _upsert(table, draft, sent, ctx, may_change=_author_within_grace)
    if changed is not None and not _update_if_current(draft):
        _stale_conflict(table, draft, sent, changed)


def decide_server_wins(table: SyncTable, draft: Draft, sent: Sent, ctx: PushContext) -> None:
    """``server_wins`` (the crop catalogue): devices only read it."""
    draft.reject([error("read_only", READ_ONLY.format(table=table.name.capitalize()))])


DECIDERS: dict[ConflictPolicy, Decider] = {
    ConflictPolicy.REJECT: decide_reject,
    ConflictPolicy.FIELD_MERGE: decide_field_merge,
    ConflictPolicy.APPEND_ONLY: decide_append_only,
    ConflictPolicy.SERVER_WINS: decide_server_wins,
}


def undecided(draft: Draft) -> bool:
    """A stale row of a ``field_merge`` table, waiting for ``merge_stale``."""
    return draft.mode is None and draft.result is None


def merge_stale(table: SyncTable, stale: list[tuple[Draft, Sent]], ctx: PushContext) -> None:
    """Stale rows of a field_merge table: the client's changed fields are applied on top of the
    server's row when none of them was changed on the server since ``base_version`` (from the
    trigger-written field history, one query); otherwise a conflict naming the overlap."""
    if not stale:
        return
    history = sql.fields_changed_since(
        table.db_table,
        [draft.id for draft, _ in stale],
        [draft.row.base_version or 1 for draft, _ in stale],
    )
    for draft, sent in stale:
        existing = draft.existing
        if existing is None:  # pragma: no cover - only stale updates are merged
            continue
        client_changed = {
            name
            for name in (draft.row.changed if draft.row.changed is not None else set(sent.values))
            if name in sent.values
        }
        overlap = sorted(client_changed & _server_changed(table, draft, existing, history))
        if overlap or not client_changed:
            conflict(table, draft, existing, conflicting=overlap or sorted(client_changed))
        else:
            _merge(table, draft, existing, client_changed, ctx)
        remember(table, draft, ctx)


def _server_changed(
    table: SyncTable,
    draft: Draft,
    existing: dict[str, Any],
    history: dict[Any, tuple[set[str], int]],
) -> set[str]:
    """The columns changed on the server since the row's base version; all of them when the
    history does not cover the whole span (changes older than the history)."""
    base = draft.row.base_version or 1
    changed, versions = history.get(draft.id, (set(), 0))
    if base > existing["version"] or versions < existing["version"] - base:
        return {column.name for column in table.columns}
    return changed


def _merge(
    table: SyncTable,
    draft: Draft,
    existing: dict[str, Any],
    client_changed: set[str],
    ctx: PushContext,
) -> None:
    values = dict(draft.values)
    for column in table.columns:
        if column.name not in client_changed:
            values[column.name] = existing[column.name]
    draft.values = values
    # Derived columns (a field's area) follow the merged values.
    if clean_errors(table, draft, ctx):
        conflict(table, draft, existing, conflicting=sorted(client_changed))
        return
    draft.mode = Mode.UPDATE
    draft.expected_version = existing["version"]
    draft.merged_fields = sorted(client_changed)
