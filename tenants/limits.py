"""Plan limits on what a tenant may hold, checked under a per-tenant lock.

Of the Plan's numbers, ``max_users`` caps objects a tenant creates (its active staff accounts:
accounts.seats). The others are rates, enforced where they are spent: ``requests_per_minute``,
``user_burst_per_minute`` and ``user_sustained_per_day`` by the throttles (apikit.throttling),
``sms_daily_quota`` by the reminder sender under a row lock (clinical.reminders.services).

A counted limit is checked by ``plan_limit_reserve`` inside the transaction that creates the
object: it takes a PostgreSQL advisory transaction lock keyed by the tenant's schema and the
limit, reads the plan's value fresh from the database, counts, and raises
``PlanLimitReachedError`` (409 ``plan_limit_reached``) when one more would pass it. Two
concurrent creates therefore count one after the other; the lock is released when the creating
transaction ends, once its row is committed (or rolled back).
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection
from django_tenants.utils import get_public_schema_name

from apikit.errors import APIError
from apikit.tenancy import current_schema_name
from tenants.models import Plan, Tenant

PLAN_LIMIT_REACHED = "plan_limit_reached"
# Limits on objects a tenant holds, with the noun for messages.
COUNTED_LIMITS: dict[str, str] = {"max_users": "active users"}
PLAN_LIMIT_DETAIL = (
    "Your organisation's plan allows {value} {noun}, and that many already exist. Deactivate "
    "one, or ask for a larger plan."
)
# pg_advisory_xact_lock(int, int): the first key names this use, so no other advisory lock in
# the database can collide with it.
_LOCK_CLASS = 0x504C  # "PL"


class PlanLimitReachedError(APIError):
    """409 ``plan_limit_reached``; the envelope names the limit and the plan's value."""

    def __init__(self, *, limit: str, value: int) -> None:
        super().__init__(
            status=409,
            code=PLAN_LIMIT_REACHED,
            detail=PLAN_LIMIT_DETAIL.format(value=value, noun=COUNTED_LIMITS[limit]),
            extra={"limit": limit, "value": value},
        )
        self.limit = limit
        self.value = value


def plan_limit_value(*, limit: str) -> int | None:
    """The current tenant's plan value for ``limit``, read from the database (not from the
    routing cache's copy of the tenant); None on the public schema (platform operators)."""
    schema = current_schema_name()
    if schema == get_public_schema_name():
        return None
    value = (
        Tenant.objects.filter(schema_name=schema).values_list(f"plan__{limit}", flat=True).first()
    )
    return None if value is None else int(value)


def plan_limit_reserve(*, limit: str, used: Callable[[], int], adding: int = 1) -> None:
    """Refuse, under the tenant's lock for ``limit``, to let ``used() + adding`` pass the plan.

    Call inside the transaction that then creates the object(s): the lock is held until it
    ends. ``used`` counts what the limit covers and runs after the lock is taken, so it sees
    every create that committed before. No limit applies on the public schema.
    """
    if limit not in COUNTED_LIMITS or not hasattr(Plan, limit):
        raise ValueError(f"{limit!r} is not a counted plan limit")
    if not connection.in_atomic_block:
        raise RuntimeError("plan_limit_reserve() must run inside the creating transaction")
    schema = current_schema_name()
    if schema == get_public_schema_name():
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [_LOCK_CLASS, f"{schema}:{limit}"]
        )
    value = plan_limit_value(limit=limit)
    if value is not None and used() + adding > value:
        raise PlanLimitReachedError(limit=limit, value=value)
