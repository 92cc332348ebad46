"""How many tables PostgreSQL's shared lock table lets one transaction lock, against how many
the database has: the rule for the tools that still take every table's lock in one transaction
(issue 20, item 3).

``pg_dump`` of the whole database (and ``pg_upgrade``, which runs it for the schema) locks every
table it dumps in one transaction. The shared lock table has room for
``max_locks_per_transaction x (max_connections + max_prepared_transactions)`` locks, so those
tools fail with "out of shared memory" once the tables outnumber it; with a 20 % margin for
what else holds locks meanwhile:

    max_locks_per_transaction >= 1.2 x tables / (max_connections + max_prepared_transactions)

with tables = ``pg_class`` rows of kind ``r`` or ``p``. Every tenant adds the template's tables, so
the headroom is also counted in tenants. The setting needs a restart, and a hot standby refuses
to run with less than its primary's value (docs/operations.md, "Lock capacity").

Reads only; counting ``pg_class`` is one sequential scan (about 70 ms at 300 tenants on a busy
machine), so provisioning's callers, not the service, ask after a tenant is made.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import connection

# The rule's 1.2 as a fraction, so the figures are exact integers.
MARGIN_NUMERATOR, MARGIN_DENOMINATOR = 6, 5

WARNING_EXCEEDED = (
    "WARNING: {tables} tables exceed the lock table's room for one transaction "
    "({capacity}): whole-database pg_dump and pg_upgrade fail with 'out of shared memory'. "
    "Set max_locks_per_transaction >= {required} (now {current}; needs a restart; standbys "
    "need at least the primary's value)."
)
WARNING_NEXT_TENANT = (
    "WARNING: the next tenant takes the database past the lock table's room for one "
    "transaction ({tables} tables, room for {capacity}, {per_tenant} per tenant): whole-"
    "database pg_dump and pg_upgrade will fail with 'out of shared memory'. Set "
    "max_locks_per_transaction >= {required_next} (now {current}; needs a restart; standbys "
    "need at least the primary's value)."
)
WARNING_LOW_HEADROOM = (
    "WARNING: room for {headroom} more tenant(s) before whole-database pg_dump and pg_upgrade "
    "fail ({tables} tables, room for {capacity}); set max_locks_per_transaction >= "
    "{required_ahead} for {ahead} more (now {current}; needs a restart; standbys need at least "
    "the primary's value)."
)


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def required_max_locks(*, tables: int, max_connections: int, max_prepared: int) -> int:
    """The smallest ``max_locks_per_transaction`` for which the rule holds."""
    slots = max_connections + max_prepared
    return _ceil_div(tables * MARGIN_NUMERATOR, slots * MARGIN_DENOMINATOR)


@dataclass(frozen=True)
class LockCapacity:
    tables: int
    tables_per_tenant: int
    max_locks_per_transaction: int
    max_connections: int
    max_prepared_transactions: int

    @property
    def slots(self) -> int:
        return self.max_connections + self.max_prepared_transactions

    @property
    def capacity(self) -> int:
        """The most tables for which the rule still holds with the current settings."""
        return self.max_locks_per_transaction * self.slots * MARGIN_DENOMINATOR // MARGIN_NUMERATOR

    @property
    def required(self) -> int:
        return self.required_for(tables=self.tables)

    def required_for(self, *, tables: int) -> int:
        return required_max_locks(
            tables=tables,
            max_connections=self.max_connections,
            max_prepared=self.max_prepared_transactions,
        )

    @property
    def exceeded(self) -> bool:
        return self.tables > self.capacity

    @property
    def headroom_tenants(self) -> int:
        """Tenants that can still be added before the rule breaks (negative: already broken)."""
        spare = self.capacity - self.tables
        return spare // self.tables_per_tenant if self.tables_per_tenant else 0

    def _figures(self) -> dict[str, int]:
        return {
            "tables": self.tables,
            "capacity": self.capacity,
            "per_tenant": self.tables_per_tenant,
            "required": self.required,
            "required_next": self.required_for(tables=self.tables + self.tables_per_tenant),
            "current": self.max_locks_per_transaction,
            "headroom": max(self.headroom_tenants, 0),
        }

    def summary(self) -> str:
        return (
            f"{self.tables} tables ({self.tables_per_tenant} per tenant); "
            f"max_locks_per_transaction {self.max_locks_per_transaction} x "
            f"({self.max_connections} + {self.max_prepared_transactions}) slots / 1.2 = room for "
            f"{self.capacity} tables; the rule needs >= {self.required}; headroom "
            f"{self.headroom_tenants} tenant(s)."
        )

    def warning(self, *, min_headroom: int = 0) -> str:
        """A WARNING line when the rule is broken, or holds for fewer than ``min_headroom`` more
        tenants (1: the next tenant would break it); "" otherwise."""
        figures = self._figures()
        if self.exceeded:
            return WARNING_EXCEEDED.format(**figures)
        if self.headroom_tenants >= max(min_headroom, 1):
            return ""
        if min_headroom <= 1:
            return WARNING_NEXT_TENANT.format(**figures)
        ahead_tables = self.tables + min_headroom * self.tables_per_tenant
        return WARNING_LOW_HEADROOM.format(
            **figures, ahead=min_headroom, required_ahead=self.required_for(tables=ahead_tables)
        )


def lock_capacity() -> LockCapacity:
    """The database's tables (kinds r and p), the template schema's (one tenant's), and the three
    settings of the rule, read now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE relnamespace = "
            "(SELECT oid FROM pg_namespace WHERE nspname = %s)), "
            "current_setting('max_locks_per_transaction')::int, "
            "current_setting('max_connections')::int, "
            "current_setting('max_prepared_transactions')::int "
            "FROM pg_class WHERE relkind IN ('r', 'p')",
            [settings.TENANT_TEMPLATE_SCHEMA],
        )
        # An aggregate without GROUP BY answers exactly one row.
        tables, per_tenant, max_locks, max_connections, max_prepared = (
            int(value) for value in cursor.fetchall()[0]
        )
    return LockCapacity(
        tables=tables,
        tables_per_tenant=per_tenant,
        max_locks_per_transaction=max_locks,
        max_connections=max_connections,
        max_prepared_transactions=max_prepared,
    )


def provisioning_warning() -> str:
    """For provisioning's callers, after a tenant is made: a WARNING line when the next tenant
    would break the rule (or it is broken already), else ""."""
    return lock_capacity().warning(min_headroom=1)
