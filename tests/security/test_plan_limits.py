"""Issue 21, item 8: plan limits are enforced.

``max_users`` caps a tenant's ACTIVE staff accounts (deactivated ones do not count: accounts.seats)
on every path that adds one — the API (create, reactivate), the Django admin's add-user and
change pages (a form error, never a 500), ``createsuperuser`` run in a tenant, provisioning — and
parallel creates cannot pass it (a lock per tenant; tested with real threads on committed rows).
The API answers 409 ``plan_limit_reached`` naming the limit and the plan's value.

The Plan's other numbers are rates, enforced and tested where they are spent; the first test
fails when a new limit appears on the Plan without being classified here.
"""

from __future__ import annotations

import importlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections, models, transaction
from django_tenants.utils import schema_context

from accounts.models import User
from apikit.tenancy import activate_public
from tenants.limits import COUNTED_LIMITS, PlanLimitReachedError, plan_limit_reserve
from tenants.models import Plan, Tenant
from tenants.services import ProvisioningError, tenant_provision
from tests.security.admin_session import admin_session, csrf_token, form_errors
from tests.security.conftest import SecurityWorld
from tests.security.world import Side

pytestmark = pytest.mark.security

USERS = "/api/v1/users/"
PASSWORD = "a-long-Passphrase-21"

# Every limit on the Plan -> the test that shows it enforced. Counted limits are tested here;
# rates where they are spent.
ENFORCED_BY: dict[str, str] = {
    "max_users": "tests.security.test_plan_limits::test_api_refuses_a_user_past_max_users",
    "sms_daily_quota": "tests.clinical.test_reminders::test_daily_quota_defers_the_rest_to_tomorrow",
    "requests_per_minute": (
        "tests.apikit.test_throttling"
        "::test_tenant_ceiling_is_shared_by_every_caller_and_staff_are_not_exempt"
    ),
    "user_burst_per_minute": (
        "tests.apikit.test_throttling::test_user_burst_is_refused_with_retry_after_and_the_envelope"
    ),
    "user_sustained_per_day": "tests.apikit.test_throttling::test_user_sustained_limit_is_per_day",
}


def test_every_plan_limit_is_enforced_and_tested() -> None:
    limits = {
        field.name
        for field in Plan._meta.get_fields()
        if isinstance(field, models.IntegerField) and not field.primary_key
    }
    assert limits == set(ENFORCED_BY), "classify the Plan's new limit in ENFORCED_BY"
    for node in ENFORCED_BY.values():
        module, name = node.split("::")
        assert callable(getattr(importlib.import_module(module), name, None)), node
    assert set(COUNTED_LIMITS) == {"max_users"}


# --- helpers -------------------------------------------------------------------------------------


def _active_users(side: Side) -> int:
    with schema_context(side.schema):
        return User.objects.filter(is_active=True).count()


def _limit_to_current(side: Side, *, spare: int = 0) -> int:
    """Give ``side`` a plan whose max_users is its active users + ``spare`` (inside the test's
    transaction: rolled back after it)."""
    limit = _active_users(side) + spare
    plan = Plan.objects.create(name=f"limit-{uuid.uuid4().hex[:8]}", max_users=limit)
    Tenant.objects.filter(schema_name=side.schema).update(plan=plan)
    return limit


def _create(sw: SecurityWorld, email: str, *, active: bool = True) -> Any:
    return sw.client(sw.a, "tenant_admin").post(
        USERS,
        {"email": email, "role": "nurse", "password": PASSWORD, "is_active": active},
        format="json",
    )


def _assert_limit_reached(response: Any, value: int) -> None:
    assert response.status_code == 409, response.content
    error = response.json()["error"]
    assert error["status"] == 409
    assert error["code"] == "plan_limit_reached"
    assert error["limit"] == "max_users"
    assert error["value"] == value
    assert str(value) in error["detail"]


# --- the API ---------------------------------------------------------------------------------------


def test_api_refuses_a_user_past_max_users(sw: SecurityWorld) -> None:
    limit = _limit_to_current(sw.a, spare=1)
    assert _create(sw, "first@example.com").status_code == 201
    _assert_limit_reached(_create(sw, "second@example.com"), limit)
    # Retried with an Idempotency-Key: the same refusal, nothing stored or created.
    retried = sw.client(sw.a, "tenant_admin").post(
        USERS,
        {"email": "second@example.com", "role": "nurse", "password": PASSWORD, "is_active": True},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    _assert_limit_reached(retried, limit)
    with schema_context(sw.a.schema):
        assert not User.objects.filter(email="second@example.com").exists()
    assert _active_users(sw.a) == limit


def test_deactivated_users_do_not_count_and_reactivation_takes_a_seat(sw: SecurityWorld) -> None:
    limit = _limit_to_current(sw.a)
    admin = sw.client(sw.a, "tenant_admin")
    # An inactive account takes no seat.
    pending = _create(sw, "pending@example.com", active=False)
    assert pending.status_code == 201, pending.content
    pending_id = pending.json()["id"]
    # Activating it would pass the limit.
    _assert_limit_reached(
        admin.patch(f"{USERS}{pending_id}/", {"is_active": True}, format="json"), limit
    )
    # Deactivating someone frees a seat; then the activation goes through.
    with schema_context(sw.a.schema):
        viewer_id = User.objects.get(email="viewer@example.com").pk
    assert admin.post(f"{USERS}{viewer_id}/deactivate/").status_code == 200
    activated = admin.patch(f"{USERS}{pending_id}/", {"is_active": True}, format="json")
    assert activated.status_code == 200, activated.content
    assert _active_users(sw.a) == limit
    # And the seat is gone again.
    _assert_limit_reached(_create(sw, "third@example.com"), limit)


def test_a_lowered_plan_keeps_its_users_and_refuses_new_ones(sw: SecurityWorld) -> None:
    """A plan changed to fewer seats than are taken removes no one; it refuses additions."""
    current = _active_users(sw.a)
    plan = Plan.objects.create(name="tiny", max_users=2)
    Tenant.objects.filter(schema_name=sw.a.schema).update(plan=plan)
    assert sw.client(sw.a, "clinician").get("/api/v1/auth/me/").status_code == 200
    _assert_limit_reached(_create(sw, "more@example.com"), 2)
    assert _active_users(sw.a) == current


def test_another_tenants_users_do_not_count(sw: SecurityWorld) -> None:
    """B's accounts (same emails, same ids) are B's seats: A's count is A's schema only."""
    _limit_to_current(sw.a, spare=1)
    with schema_context(sw.b.schema):
        assert User.objects.filter(is_active=True).count() > 1
    assert _create(sw, "fits@example.com").status_code == 201


# --- the Django admin -------------------------------------------------------------------------------

ADD_PAGE = "/admin/accounts/user/add/"


def _admin_add(side: Side, email: str) -> Any:
    browser = admin_session(side)
    token = csrf_token(browser, ADD_PAGE)
    return browser.post(
        ADD_PAGE,
        {
            "email": email,
            "role": "nurse",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "csrfmiddlewaretoken": token,
        },
        HTTP_ORIGIN=f"http://{side.host}",
    )


def test_admin_add_user_page_shows_the_limit_as_a_form_error(sw: SecurityWorld) -> None:
    limit = _limit_to_current(sw.a, spare=1)
    added = _admin_add(sw.a, "added@example.com")
    assert added.status_code == 302, form_errors(added)
    refused = _admin_add(sw.a, "refused@example.com")
    assert refused.status_code == 200
    errors = " ".join(form_errors(refused))
    assert f"allows {limit} active users" in errors, errors
    with schema_context(sw.a.schema):
        assert User.objects.filter(email="added@example.com", is_active=True).exists()
        assert not User.objects.filter(email="refused@example.com").exists()


def test_admin_reactivation_shows_the_limit_as_a_form_error(sw: SecurityWorld) -> None:
    with schema_context(sw.a.schema):
        dormant = User.objects.get(email="viewer@example.com")
        User.objects.filter(pk=dormant.pk).update(is_active=False)
    limit = _limit_to_current(sw.a)
    browser = admin_session(sw.a)
    page = f"/admin/accounts/user/{dormant.pk}/change/"
    token = csrf_token(browser, page)
    response = browser.post(
        page,
        {
            "email": "viewer@example.com",
            "full_name": "viewer",
            "role": "viewer",
            "is_active": "on",
            "csrfmiddlewaretoken": token,
        },
        HTTP_ORIGIN=f"http://{sw.a.host}",
    )
    assert response.status_code == 200, response.status_code
    assert f"allows {limit} active users" in " ".join(form_errors(response))
    with schema_context(sw.a.schema):
        assert not User.objects.get(pk=dormant.pk).is_active


# --- management commands and provisioning ----------------------------------------------------------


def test_createsuperuser_in_a_tenant_takes_a_seat(sw: SecurityWorld) -> None:
    limit = _limit_to_current(sw.a)
    with schema_context(sw.a.schema), pytest.raises(PlanLimitReachedError) as refused:
        call_command("createsuperuser", interactive=False, email="root@example.com", verbosity=0)
    assert (refused.value.limit, refused.value.value) == ("max_users", limit)
    with schema_context(sw.a.schema):
        assert not User.objects.filter(email="root@example.com").exists()
    activate_public()


def test_provisioning_needs_a_seat_for_the_first_admin(sw: SecurityWorld) -> None:
    Plan.objects.create(name="no-seats", max_users=0)
    with pytest.raises(ProvisioningError, match="allows no users"):
        tenant_provision(
            slug="sec-seatless",
            name="Seatless",
            kind=Tenant.Kind.CLINIC,
            admin_email="admin@example.com",
            plan_name="no-seats",
        )
    assert not Tenant.objects.filter(slug="sec-seatless").exists()


def test_platform_operators_have_no_plan_and_no_limit(sw: SecurityWorld) -> None:
    activate_public()
    counted: list[str] = []

    def used() -> int:
        counted.append("counted")
        return 10**9

    with transaction.atomic():
        plan_limit_reserve(limit="max_users", used=used)
    assert counted == []


# --- parallel creates, real threads, committed rows -------------------------------------------------

THREADS = 8


@pytest.fixture
def committed_seats(
    security_world: SecurityWorld, django_db_blocker: pytest.FixtureRequest
) -> Iterator[tuple[SecurityWorld, int]]:
    """A's plan committed with exactly one free seat; undone (plan, users) afterwards."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        side = security_world.a
        tenant = Tenant.objects.get(schema_name=side.schema)
        original_plan = tenant.plan_id
        limit = _active_users(side) + 1
        plan = Plan.objects.create(
            name=f"seats-{uuid.uuid4().hex[:8]}",
            max_users=limit,
            requests_per_minute=10**9,
            user_burst_per_minute=10**9,
            user_sustained_per_day=10**9,
        )
        Tenant.objects.filter(pk=tenant.pk).update(plan=plan)
        try:
            yield security_world, limit
        finally:
            with schema_context(side.schema):
                User.objects.filter(email__startswith="racer-").delete()
            activate_public()
            Tenant.objects.filter(pk=tenant.pk).update(plan_id=original_plan)
            plan.delete()


def test_parallel_creates_cannot_pass_the_limit(
    committed_seats: tuple[SecurityWorld, int], django_db_blocker: pytest.FixtureRequest
) -> None:
    sw, limit = committed_seats
    barrier = threading.Barrier(THREADS)
    results: list[Any] = [None] * THREADS

    def racer(index: int) -> None:
        try:
            client = sw.client(sw.a, "tenant_admin")
            barrier.wait(timeout=30)
            results[index] = client.post(
                USERS,
                {
                    "email": f"racer-{index}@example.com",
                    "role": "nurse",
                    "password": PASSWORD,
                    "is_active": True,
                },
                format="json",
            )
        finally:
            connections.close_all()

    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        threads = [threading.Thread(target=racer, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        statuses = sorted(response.status_code for response in results)
        assert statuses == [201] + [409] * (THREADS - 1), [r.content[:200] for r in results]
        for response in results:
            if response.status_code == 409:
                _assert_limit_reached(response, limit)
        assert _active_users(sw.a) == limit
        activate_public()
