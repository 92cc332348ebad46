"""Seats: the plan's ``max_users`` caps a tenant's ACTIVE staff accounts.

Deactivated (and not yet activated) accounts do not count: deactivating someone frees a seat,
and activating an account takes one, so creating an active user and reactivating one are both
checked. Every path that adds an active account calls ``user_seat_reserve`` inside its
transaction — accounts.services (API, admin, provisioning, ``provision_demo``) and
``UserManager.create_user`` (``createsuperuser`` run in a tenant) — which takes the tenant's
lock (tenants.limits), so parallel creates cannot pass the limit. Platform operators (the
public schema) have no plan and no limit.
"""

from __future__ import annotations

from accounts.models import User
from tenants.limits import plan_limit_reserve

MAX_USERS = "max_users"


def user_seats_used() -> int:
    """Active accounts of the current tenant: what ``max_users`` counts."""
    return User.objects.filter(is_active=True).count()


def user_seat_reserve(*, adding: int = 1) -> None:
    """Refuse (409 ``plan_limit_reached``, limit ``max_users``) when ``adding`` more active
    accounts would pass the plan; otherwise hold the tenant's seat lock until the caller's
    transaction ends. Call inside the transaction that creates or activates the account(s)."""
    plan_limit_reserve(limit=MAX_USERS, used=user_seats_used, adding=adding)
