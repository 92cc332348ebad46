"""The lock-capacity rule for whole-database pg_dump / pg_upgrade (issue 20, item 3):
max_locks_per_transaction >= 1.2 x tables / (max_connections + max_prepared_transactions), read
from the real server, warned about by the migration Job's check and by provisioning's callers."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client

from tenants import lock_capacity as capacity_module
from tenants.lock_capacity import LockCapacity, lock_capacity, required_max_locks
from tenants.models import Plan, Tenant
from tests.tenants.operators import operator_client

# 64 x 100 slots / 1.2 = room for 5,333 tables: the Debian defaults the issue measured.
DEBIAN_DEFAULTS = {
    "tables_per_tenant": 43,
    "max_locks_per_transaction": 64,
    "max_connections": 100,
    "max_prepared_transactions": 0,
}


def _capacity(tables: int) -> LockCapacity:
    return LockCapacity(tables=tables, **DEBIAN_DEFAULTS)


@pytest.mark.parametrize(
    ("tables", "connections", "prepared", "required"),
    [
        (5000, 100, 0, 60),  # 1.2 x 5000 / 100 = 60 exactly
        (5001, 100, 0, 61),  # a fraction over: the next integer
        (12936, 100, 0, 156),  # 300 tenants of 43 tables
        (86000, 100, 0, 1032),  # 2,000 tenants
        (430000, 200, 10, 2458),  # 10,000 tenants, prepared transactions count as slots
    ],
)
def test_the_rule_is_the_documented_formula(
    tables: int, connections: int, prepared: int, required: int
) -> None:
    assert (
        required_max_locks(tables=tables, max_connections=connections, max_prepared=prepared)
        == required
    )
    assert required * (connections + prepared) * 5 >= tables * 6  # the rule holds at it
    assert (required - 1) * (connections + prepared) * 5 < tables * 6  # and not below it


def test_capacity_and_headroom_in_tenants() -> None:
    fine = _capacity(563)
    assert fine.capacity == 5333
    assert not fine.exceeded
    assert fine.headroom_tenants == (5333 - 563) // 43
    assert fine.warning(min_headroom=1) == ""
    assert "headroom 110 tenant(s)" in fine.summary()

    broken = _capacity(12936)
    assert broken.exceeded
    assert broken.headroom_tenants < 0
    assert broken.required == 156
    warning = broken.warning(min_headroom=1)
    assert warning.startswith("WARNING: 12936 tables exceed")
    assert "max_locks_per_transaction >= 156 (now 64; needs a restart" in warning
    assert "standbys need at least the primary's value" in warning


def test_the_next_tenant_crossing_is_warned_about_and_not_one_before() -> None:
    last_fitting = _capacity(5333 - 43)  # one more tenant still fits exactly
    assert last_fitting.headroom_tenants == 1
    assert last_fitting.warning(min_headroom=1) == ""
    crossing = _capacity(5333 - 42)  # the next tenant would need 5,334
    assert crossing.headroom_tenants == 0
    warning = crossing.warning(min_headroom=1)
    assert warning.startswith("WARNING: the next tenant takes the database past")
    assert f">= {required_max_locks(tables=5334, max_connections=100, max_prepared=0)}" in warning


def test_low_headroom_names_the_value_for_the_tenants_ahead() -> None:
    warning = _capacity(5333 - 43 * 10).warning(min_headroom=100)
    assert warning.startswith("WARNING: room for 10 more tenant(s)")
    ahead = required_max_locks(tables=5333 - 430 + 4300, max_connections=100, max_prepared=0)
    assert f">= {ahead} for 100 more" in warning


@pytest.mark.django_db
def test_the_selector_reads_the_real_catalog_and_settings(alpha: object, beta: object) -> None:
    capacity = lock_capacity()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_class WHERE relkind IN ('r', 'p')")
        tables = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s",
            [settings.TENANT_TEMPLATE_SCHEMA],
        )
        per_tenant = cursor.fetchone()[0]
        cursor.execute("SHOW max_locks_per_transaction")
        max_locks = int(cursor.fetchone()[0])
        cursor.execute("SHOW max_connections")
        max_connections = int(cursor.fetchone()[0])
    assert capacity.tables == tables
    assert capacity.tables_per_tenant == per_tenant > 30
    assert capacity.max_locks_per_transaction == max_locks
    assert capacity.max_connections == max_connections
    # Two tenants (alpha, beta) and the template hold at least three tenants' tables.
    assert capacity.tables >= 3 * per_tenant


@pytest.mark.django_db
def test_the_migration_jobs_check_prints_the_figures_and_warns_with_exit_0() -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("check_lock_capacity", "--min-headroom", "0", stdout=out, stderr=err)
    assert out.getvalue().startswith("Lock capacity: ")
    assert "max_locks_per_transaction" in out.getvalue()
    capacity = lock_capacity()
    assert ("WARNING" in err.getvalue()) == capacity.exceeded

    # Asking for more headroom than any server has: a WARNING line, and still no error.
    out, err = io.StringIO(), io.StringIO()
    call_command("check_lock_capacity", "--min-headroom", "100000000", stdout=out, stderr=err)
    assert "WARNING: " in err.getvalue()
    assert "needs a restart" in err.getvalue()


@pytest.fixture
def near_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server as it would be with one tenant of room left after this one."""
    monkeypatch.setattr(capacity_module, "lock_capacity", lambda: _capacity(5333 - 42))


def _provision_gamma() -> str:
    """provision_tenant of a new clinic tenant; what it wrote to stderr."""
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "provision_tenant",
        "gamma",
        name="Gamma",
        kind="clinic",
        admin_email="boss@gamma.example",
        admin_password="gamma-Password-9",
        stdout=out,
        stderr=err,
    )
    assert "Provisioned tenant 'gamma'" in out.getvalue()
    return err.getvalue()


@pytest.mark.django_db
def test_provision_tenant_warns_when_the_next_tenant_crosses(near_the_limit: None) -> None:
    err = _provision_gamma()
    assert Tenant.objects.filter(slug="gamma", ready=True).exists()
    assert err.startswith("WARNING: the next tenant takes the database past")


@pytest.mark.django_db
def test_provision_tenant_is_quiet_with_room_left() -> None:
    err = _provision_gamma()
    assert ("WARNING" in err) == (lock_capacity().headroom_tenants < 1)


@pytest.mark.django_db
def test_the_operators_admin_warns_after_provisioning_near_the_limit(near_the_limit: None) -> None:
    operator: Client = operator_client(email="ops@verdant.example", password="ops-Password-77")
    response = operator.post(
        "/admin/tenants/tenant/add/",
        {
            "slug": "delta",
            "name": "Delta Farms",
            "kind": "farm",
            "plan": Plan.objects.get(name="starter").pk,
            "admin_email": "boss@delta.example",
            "admin_password": "",
        },
        follow=True,
    )
    assert response.status_code == 200
    shown = [(m.level_tag, str(m)) for m in response.context["messages"]]
    assert any(
        level == "warning" and text.startswith("WARNING: the next tenant takes the database past")
        for level, text in shown
    ), shown
    assert Tenant.objects.filter(slug="delta", ready=True).exists()
