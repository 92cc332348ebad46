"""The synced tables: which models field apps receive and send, under which wire names, which
columns, who may see which rows and fields, and how push conflicts are resolved.

Contract (shared by pull, part A, and push, part B — keep it stable):

- ``SyncTable`` (frozen dataclass), one per wire table: ``farms``, ``fields``, ``crops``,
  ``plantings``, ``observations``, ``harvests``, ``patients``, ``appointments``.
  - ``name``: the wire table name.
  - ``model``: the Django model (a ``TenantModel``: UUID ``id``, ``version``, ``archived_at``).
  - ``fields``: wire field name -> model attname (``farm_id`` -> ``farm_id``). Every field the
    table can ever send; ``id`` and ``version`` are always included.
  - ``server_managed``: wire fields the server owns; ignored on push, never errors (``id`` is not
    in it: the client supplies ids).
  - ``conflict_policy``: ``ConflictPolicy`` (reject / field_merge / append_only / server_wins).
  - ``scope(user, queryset) -> queryset``: ``queryset`` of ``model`` narrowed to the rows the user
    may see (facility / farm grants from ``apikit.policy``; tenant_admin sees all; archived
    containers hide their rows). Archived rows themselves are *not* filtered here.
  - ``projection(user) -> frozenset[str]``: the wire fields this user's role may receive.
  - ``view_permission``: the model permission (``farms.view_field``) a role needs to sync the
    table at all.
  - ``container_model`` / ``container_path``: the container (Farm or Facility, None for the
    tenant-wide crop catalogue) and the ORM path from a row to the container's id
    (``field__farm_id``).
  - ``depends_on``: wire tables whose rows this table references (push order).
- ``sync_tables()`` -> ``{name: SyncTable}`` in dependency order; ``sync_table(name)`` -> one
  (``KeyError`` for an unknown name).

Registrations live in ``clinical/sync.py`` and ``farms/sync.py`` and are imported by
``SyncConfig.ready()``; this module imports neither (no import cycles).

Every registered table must also have change-log triggers (``sync`` migrations); the test suite
checks both lists match.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from django.db.models import Model, QuerySet


class ConflictPolicy(StrEnum):
    """What a push does when its ``base_version`` is stale (sync-protocol.md §6.3)."""

    # Conflict reported with the server's copy; the client decides (clinical rows).
    REJECT = "reject"
    # Applied when the changed fields do not overlap fields changed since base (plantings...).
    FIELD_MERGE = "field_merge"
    # Rows are immutable after creation; corrections are new rows with ``supersedes``.
    APPEND_ONLY = "append_only"
    # Catalogues (crops): devices read them; pushes are rejected with ``read_only``.
    SERVER_WINS = "server_wins"


ScopeFn = Callable[[Any, QuerySet[Any]], QuerySet[Any]]
ProjectionFn = Callable[[Any], frozenset[str]]

# Always server-managed on every table.
COMMON_SERVER_MANAGED = frozenset({"version", "created_at", "updated_at"})


@dataclass(frozen=True)
class SyncTable:
    name: str
    model: type[Model]
    fields: Mapping[str, str]
    server_managed: frozenset[str]
    conflict_policy: ConflictPolicy
    scope: ScopeFn
    projection: ProjectionFn
    view_permission: str
    container_model: type[Model] | None
    container_path: str | None
    depends_on: tuple[str, ...] = ()
    # Wire fields hidden from some roles (documentation; ``projection`` decides).
    sensitive_fields: frozenset[str] = field(default_factory=frozenset)

    @property
    def db_table(self) -> str:
        return str(self.model._meta.db_table)

    @property
    def writable_fields(self) -> frozenset[str]:
        """Wire fields a push may set (everything but ``id`` and server-managed fields)."""
        return frozenset(self.fields) - self.server_managed - {"id"}

    def may_sync(self, user: Any) -> bool:
        return bool(user.has_perm(self.view_permission))


_TABLES: dict[str, SyncTable] = {}


def register(table: SyncTable) -> SyncTable:
    """Add (or replace, on re-import) a table. Called by the domain ``sync.py`` modules."""
    missing = {"id", "version"} - set(table.fields)
    if missing:
        raise ValueError(f"sync table {table.name!r} must send {sorted(missing)}")
    _TABLES[table.name] = table
    return table


def _ordered() -> dict[str, SyncTable]:
    ordered: dict[str, SyncTable] = {}

    def visit(name: str, path: tuple[str, ...] = ()) -> None:
        if name in ordered:
            return
        if name in path:
            raise ValueError(f"sync tables depend on each other in a cycle: {path}")
        table = _TABLES[name]
        for dependency in table.depends_on:
            if dependency in _TABLES:
                visit(dependency, (*path, name))
        ordered[name] = table

    for name in sorted(_TABLES):
        visit(name)
    return ordered


def sync_tables() -> dict[str, SyncTable]:
    """Every registered table, in dependency order (a table after those it references)."""
    return _ordered()


def sync_table(name: str) -> SyncTable:
    return _TABLES[name]


def projection_all(table_fields: Mapping[str, str]) -> ProjectionFn:
    everything = frozenset(table_fields)
    return lambda user: everything


def projection_hiding(
    table_fields: Mapping[str, str], *, hidden: frozenset[str], unless_roles: frozenset[str]
) -> ProjectionFn:
    """Every field, except ``hidden`` ones for roles outside ``unless_roles``."""
    everything = frozenset(table_fields)
    reduced = everything - hidden

    def projection(user: Any) -> frozenset[str]:
        return everything if getattr(user, "role", None) in unless_roles else reduced

    return projection
