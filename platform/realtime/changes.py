"""The ``changes`` subscription: a nudge naming the synced tables with new changes in the user's
(or the token's device's) sync scope, carrying no row data, so a field app pulls at once instead
of polling ``sync/pull``. The scope is sync's own (``sync.selectors``), computed when the
subscription opens and again at every re-check (its kind has no ``recheck``: a published grant change
or the periodic sweep opens it again), so a withdrawn facility stops producing nudges within seconds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from realtime.registry import Entry, SubscriptionKind, register_kind
from sync.selectors import sync_scope, tables_for_user

NIL = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class Nudge:
    tables: frozenset[str]
    # None: every container of the tenant (tenant_admin).
    containers: frozenset[str] | None


def changes_open(*, user: Any, identity: Any, params: dict[str, Any]) -> Nudge:
    tables = tables_for_user(user=user, requested=None)
    scope = sync_scope(user=user, tables=tables)
    containers = None if scope.container_ids is None else frozenset(map(str, scope.container_ids))
    return Nudge(tables=frozenset(table.name for table in tables), containers=containers)


def changes_load(*, entries: list[Entry], roles: frozenset[str]) -> None:
    return None


def changes_match(
    nudge: Nudge, batch: None, entries: list[Entry], *, role: str, resumed: bool
) -> list[tuple[str, dict[str, Any]]]:
    seen: set[str] = set()
    last: Entry | None = None
    for entry in entries:
        if entry.tbl not in nudge.tables:
            continue
        if (
            nudge.containers is None
            or NIL in entry.scope_ids
            or not nudge.containers.isdisjoint(entry.scope_ids)
        ):
            seen.add(entry.tbl)
            last = entry
    if last is None:
        return []
    return [(last.event_id, {"event": "changes", "tables": sorted(seen)})]


register_kind(
    SubscriptionKind(
        name="changes",
        # Every table of the change log; changes_open narrows to the user's.
        tables=None,
        open=changes_open,
        load=changes_load,
        match=changes_match,
    )
)
