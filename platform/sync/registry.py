"""The synced tables: the one description of each table field apps receive (pull) and send
(push) — wire names, columns, who may see and change which rows and fields, how push conflicts
are resolved, and the domain's rules for a pushed row.

Contract (keep it stable; the pull and the push both read it):

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
  - ``depends_on``: wire tables whose rows this table references (pull and push order).
  - Push (``sync.push``): ``columns`` (the client-writable ``Column``s, a subset of
    ``writable_fields``), ``write_level`` on the container, ``container_of``, ``clean`` (the
    domain's rules for one row, calling the same rule functions as its services), ``derived``
    columns, ``ref_info`` / ``ref_sql`` (what other rows need to know about a row of this table),
    ``recorded_by``, ``preload``, ``check_batch`` (set-wise rules over the table's rows),
    ``constraints`` (how a row tripping a database constraint is reported) and ``after_write``.
- ``sync_tables()`` -> ``{name: SyncTable}`` in dependency order, the tables the active tenant's
  kind serves (``tenants.kinds``: a farm tenant's devices never get clinical tables, a clinic
  tenant's never farm ones; issue 19 item 6); ``sync_table(name)`` -> one, whatever the kind
  (``KeyError`` for an unknown name). ``tables_not_served_check(names)`` -> the 400 envelope for
  registered tables outside the kind (the pull's ``?tables=`` and the push's tables with rows).
  ``register_reference()`` adds a table pushed rows point at without being synced (facilities,
  users).

Registrations live in ``clinical/sync.py`` and ``farms/sync.py``, imported by each domain app's
own ``AppConfig.ready()``: this package imports no domain module (an import-linter contract).

Every registered table must also have change-log triggers (``sync`` migrations); the test suite
checks both lists match.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.db.models import Model, QuerySet

from apikit.errors import APIError
from apikit.policy import AccessLevel
from tenants.kinds import kind_hidden_apps

if TYPE_CHECKING:
    from sync.columns import Column
    from sync.push.context import PushContext
    from sync.push.rows import Draft


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
# A pushed row's values (every column, references checked) -> its container's id.
ContainerOfFn = Callable[[dict[str, Any], "PushContext"], Any]
# The domain's rules for one pushed row: may normalise ``draft.values`` and set derived columns;
# raises ``apikit.rules.RuleError`` (or ``sync.push.rows.RowInvalidError`` for several).
CleanFn = Callable[["Draft", "PushContext"], None]
# A row's values -> what rows referencing it need to know (the keys ``ref_sql`` selects).
RefInfoFn = Callable[[dict[str, Any], "PushContext"], dict[str, Any]]
PreloadFn = Callable[[list[Any], "PushContext"], None]
BatchCheckFn = Callable[[list["Draft"], "PushContext"], None]
AfterWriteFn = Callable[[list[uuid.UUID]], None]

# Always server-managed on every table.
COMMON_SERVER_MANAGED = frozenset({"version", "created_at", "updated_at"})


@dataclass(frozen=True)
class Derived:
    """A server-computed column a push writes with the row (a field's area from its boundary)."""

    name: str
    sql_type: str


@dataclass(frozen=True)
class ConstraintRule:
    """A database constraint a table's checks stand in front of, which a concurrent writer can
    still make a pushed row trip (the checks saw the data before that writer committed)."""

    name: str
    # Reports the row when it is replayed on its own and trips the constraint.
    report: Callable[[Draft], None]
    # The error of every row of the failed statement in an all-or-nothing batch (None: the
    # generic "conflicts with data written at the same time").
    batch_error: dict[str, str] | None = None


@dataclass(frozen=True)
class Reference:
    """A table pushed rows point at without being synced itself (facilities, users): how its
    rows are loaded for the checks (``select`` over alias ``t``, returning id and archived_at)."""

    name: str
    model: type[Model]
    select: str


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

    # --- push -----------------------------------------------------------------------------
    # The client-writable columns; input naming anything else is ignored.
    columns: tuple[Column, ...] = ()
    # Level needed on the container to create / change / delete rows of this table.
    write_level: AccessLevel = AccessLevel.MANAGE
    container_of: ContainerOfFn | None = None
    clean: CleanFn | None = None
    derived: tuple[Derived, ...] = ()
    ref_info: RefInfoFn | None = None
    # SELECT list (alias t) of the reference loader; it must return id and archived_at.
    ref_sql: str = "t.id, t.archived_at"
    # Whether ``recorded_by_id`` is stamped with the acting user on insert (besides
    # created_by / updated_by).
    recorded_by: bool = False
    # Extra lookups before the table's rows are decided (one query each), e.g. MRNs taken.
    preload: PreloadFn | None = None
    # Set-wise rules over the table's decided rows (one query for the batch): no double booking.
    check_batch: BatchCheckFn | None = None
    constraints: tuple[ConstraintRule, ...] = ()
    # Follow-ups in the push's transaction, with the ids written (an appointment's reminders).
    after_write: AfterWriteFn | None = None

    @property
    def db_table(self) -> str:
        return str(self.model._meta.db_table)

    @property
    def writable_fields(self) -> frozenset[str]:
        """Wire fields a push may set (everything but ``id`` and server-managed fields)."""
        return frozenset(self.fields) - self.server_managed - {"id"}

    def may_sync(self, user: Any) -> bool:
        return bool(user.has_perm(self.view_permission))

    def perm(self, action: str) -> str:
        """The model permission for ``action`` (add / change / delete) on a row of the table."""
        return f"{self.model._meta.app_label}.{action}_{self.model._meta.model_name}"

    @cached_property
    def columns_by_name(self) -> dict[str, Column]:
        """Columns by wire name and by alias (``field`` -> the ``field_id`` column)."""
        return {
            **{alias: column for column in self.columns for alias in column.aliases},
            **{column.name: column for column in self.columns},
        }

    @cached_property
    def comparable(self) -> tuple[str, ...]:
        """The columns a push writes (client-writable, then derived)."""
        return tuple(column.name for column in self.columns) + tuple(d.name for d in self.derived)

    def wire_name(self, name: str) -> str:
        """The wire column a domain rule's field stands for (``planting`` -> ``planting_id``)."""
        column = self.columns_by_name.get(name)
        return column.name if column is not None else name

    def constraint_rule(self, name: str) -> ConstraintRule | None:
        return next((rule for rule in self.constraints if rule.name == name), None)


_TABLES: dict[str, SyncTable] = {}
_REFERENCES: dict[str, Reference] = {}


def register(table: SyncTable) -> SyncTable:
    """Add (or replace, on re-import) a table. Called by the domain ``sync.py`` modules."""
    missing = {"id", "version"} - set(table.fields)
    if missing:
        raise ValueError(f"sync table {table.name!r} must send {sorted(missing)}")
    unknown = {column.name for column in table.columns} - table.writable_fields
    if unknown:
        raise ValueError(f"sync table {table.name!r}: {sorted(unknown)} are not writable fields")
    pushable = table.conflict_policy != ConflictPolicy.SERVER_WINS
    if pushable and (table.container_model is None or table.container_of is None):
        raise ValueError(f"sync table {table.name!r} is pushed: it needs its container")
    _TABLES[table.name] = table
    return table


def register_reference(reference: Reference) -> Reference:
    """Add a table pushed rows reference without it being synced (checked, never written)."""
    _REFERENCES[reference.name] = reference
    return reference


def reference_loader(name: str) -> tuple[str, str]:
    """(db table, SELECT list over alias ``t``) for loading rows of ``name`` that pushed rows
    reference: a synced table's ``ref_sql``, or a registered reference's."""
    if name in _TABLES:
        return _TABLES[name].db_table, _TABLES[name].ref_sql
    reference = _REFERENCES[name]
    return str(reference.model._meta.db_table), reference.select


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


def _hidden_apps() -> frozenset[str]:
    """The domain apps the active tenant's kind does not serve. django-tenants' ``connection.tenant``
    is the routed ``Tenant`` in a request; a schema entered by name only (public, a task in
    ``schema_context``) has no kind and hides nothing."""
    kind = getattr(getattr(connection, "tenant", None), "kind", None)
    return kind_hidden_apps(kind) if kind is not None else frozenset()


def sync_tables() -> dict[str, SyncTable]:
    """The tables the active tenant's kind serves, in dependency order (a table after those it
    references)."""
    hidden = _hidden_apps()
    return {
        name: table
        for name, table in _ordered().items()
        if table.model._meta.app_label not in hidden
    }


TABLES_NOT_SERVED = (
    "This organisation does not sync {tables}: its kind ({kind}) has no {apps} data. "
    "Choose from: {served}."
)


def tables_not_served_check(names: Iterable[str]) -> None:
    """400 ``table_not_served`` naming the registered tables in ``names`` that the active
    tenant's kind does not serve (unknown names are left to the caller's own check)."""
    hidden = _hidden_apps()
    outside = sorted(
        {
            name
            for name in names
            if name in _TABLES and _TABLES[name].model._meta.app_label in hidden
        }
    )
    if outside:
        tenant = getattr(connection, "tenant", None)
        raise APIError(
            status=400,
            code="table_not_served",
            detail=TABLES_NOT_SERVED.format(
                tables=", ".join(outside),
                kind=getattr(tenant, "kind", ""),
                apps=", ".join(sorted(hidden)),
                served=", ".join(sync_tables()),
            ),
        )


def sync_table(name: str) -> SyncTable:
    return _TABLES[name]


def projection_all(table_fields: Mapping[str, str]) -> ProjectionFn:
    everything = frozenset(table_fields)
    return lambda user: everything
