"""Scope changes delivered as ordinary, pageable changes (docs/sync-internals.md, "Scope changes").

When a user's scope changes (a farm or facility granted or revoked, a container archived, a role
change, another set of tables) or a local migration adds tables or columns, the device receives
the difference, page by page, before the run goes on with the change log:

- the ids of every row it may hold that the new scope no longer covers (``deleted``), and
- every row the new scope covers that it does not hold completely (``updated``).

What "may hold" and "holds completely" mean comes from the scopes the device synced under,
kept as content-addressed snapshots (``ScopeSnapshot``): ``held`` (an OR: rows of any of them
may be on the device) and ``have`` (an AND: rows covered by all of them are on the device with
the fields the new scope sends). Outside a change both are the cursor's own scope. If the scope
changes again while a change is delivered, the target joins both lists, so rows half sent are
neither skipped nor left behind.

Why not WatermelonDB's ``replacement`` strategy: ``synchronize()`` applies it per response
(each page would destroy what the previous pages delivered) and nothing carries across syncs.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.db.models import Q

from apikit.tenancy import current_schema_name
from sync.models import ScopeSnapshot
from sync.registry import SyncTable
from sync.selectors import ContainerSet, SyncScope

# A predicate over a table's rows: True (every row), False (none), or a Q.
Predicate = Q | bool


@dataclass(frozen=True)
class Snapshot:
    """What one scope digest covered (see ``ScopeSnapshot``)."""

    digest: str
    tables: dict[str, tuple[str, ...]]
    containers: dict[str, ContainerSet]

    @classmethod
    def of(cls, scope: SyncScope) -> Snapshot:
        return cls(digest=scope.digest, tables=scope.tables, containers=scope.containers)


# --- snapshots ---------------------------------------------------------------------------------

_saved: set[tuple[str, Any, str]] = set()
_saved_lock = threading.Lock()


def snapshot_remember(scope: SyncScope) -> None:
    """Store what ``scope``'s digest means, once per digest (no query once this process knows
    it is stored). The tenant's id is part of the key: a tenant dropped and provisioned again
    under the same schema name starts with an empty table."""
    tenant = getattr(connection, "tenant", None)
    key = (current_schema_name(), getattr(tenant, "pk", None), scope.digest)
    if key in _saved:
        return
    ScopeSnapshot.objects.bulk_create(
        [
            ScopeSnapshot(
                digest=scope.digest,
                role=scope.role,
                tables={name: list(fields) for name, fields in scope.tables.items()},
                containers={label: cs.as_json() for label, cs in scope.containers.items()},
            )
        ],
        ignore_conflicts=True,
    )
    # Remembered once committed: a rolled-back insert must be tried again.
    transaction.on_commit(lambda: _mark_saved(key))


def _mark_saved(key: tuple[str, Any, str]) -> None:
    with _saved_lock:
        _saved.add(key)


def forget_remembered_snapshots() -> None:
    with _saved_lock:
        _saved.clear()


def snapshots_load(digests: Iterable[str]) -> dict[str, Snapshot] | None:
    """The snapshots of ``digests`` (one query), or None when one is unknown (a cursor issued
    before snapshots were kept: the caller answers 410 and the device re-syncs)."""
    wanted = set(digests)
    if not wanted:
        return {}
    found = {
        row.digest: Snapshot(
            digest=row.digest,
            tables={name: tuple(fields) for name, fields in row.tables.items()},
            containers={
                label: ContainerSet.from_json(data) for label, data in row.containers.items()
            },
        )
        for row in ScopeSnapshot.objects.filter(digest__in=wanted)
    }
    return found if set(found) == wanted else None


# --- predicates ----------------------------------------------------------------------------------


def _or(left: Predicate, right: Predicate) -> Predicate:
    if left is True or right is True:
        return True
    if left is False:
        return right
    if right is False:
        return left
    return left | right


def _and(left: Predicate, right: Predicate) -> Predicate:
    if left is False or right is False:
        return False
    if left is True:
        return right
    if right is True:
        return left
    return left & right


def _not(value: Predicate) -> Predicate:
    if isinstance(value, bool):
        return not value
    return ~value


def covered(table: SyncTable, snapshot: Snapshot) -> Predicate:
    """The rows of ``table`` (archived or not) under containers ``snapshot`` covered."""
    if table.name not in snapshot.tables:
        return False
    if table.container_model is None or table.container_path is None:
        return True
    containers = snapshot.containers.get(table.container_model._meta.label)
    if containers is None:
        return False
    lookup = f"{table.container_path}__in"
    if containers.everything:
        return ~Q(**{lookup: list(containers.ids)}) if containers.ids else True
    return Q(**{lookup: list(containers.ids)}) if containers.ids else False


def lost(table: SyncTable, *, held: list[Snapshot], target: Snapshot, may_sync: bool) -> Predicate:
    """Rows the device may hold that ``target`` no longer covers. A table the device merely
    stopped asking for (``tables=``) is left alone; one the user may no longer sync is dropped."""
    if table.name not in target.tables and may_sync:
        return False
    may_hold: Predicate = False
    for snapshot in held:
        may_hold = _or(may_hold, covered(table, snapshot))
    return _and(may_hold, _not(covered(table, target)))


def gained(
    table: SyncTable, *, have: list[Snapshot], target: Snapshot, full: Iterable[str]
) -> Predicate:
    """Rows ``target`` covers that the device does not hold completely (every row of a table
    a migration added, or whose fields the device holds differ)."""
    if table.name not in target.tables:
        return False
    if table.name in set(full):
        return True
    missing: Predicate = False
    for snapshot in have:
        if snapshot.tables.get(table.name) != target.tables[table.name]:
            return True
        missing = _or(missing, _not(covered(table, snapshot)))
    return missing


def after_id(last: str) -> uuid.UUID | None:
    return uuid.UUID(last) if last else None
