"""With TENANT_LIMIT_SET_CALLS on, django-tenants sets search_path once per tenant switch. These
tests guard the ways a cached path could go stale and read another tenant's rows
(tenancy notes §2.2 and §6.1 #9): rolled-back savepoints and transactions, and switches."""

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django_tenants.utils import tenant_context

from accounts.models import User
from tests.conftest import CLINICIAN_ID, TenantWorld


def _search_path() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW search_path")
        return str(cursor.fetchone()[0])


def _clinician_name() -> str:
    return User.objects.get(pk=CLINICIAN_ID).full_name


def test_the_setting_is_on() -> None:
    assert settings.TENANT_LIMIT_SET_CALLS is True


def test_rolled_back_savepoint_that_switched_tenant_does_not_leave_a_stale_path(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    def duplicate_in_beta() -> None:
        # Same primary key, inside beta, inside a savepoint: the savepoint fails and rolls back,
        # which also undoes the SET to beta issued inside it.
        with transaction.atomic(), tenant_context(beta.tenant):
            assert _clinician_name() == "beta clinician"
            User.objects.create(id=CLINICIAN_ID, email="dupe@example.com")

    with tenant_context(alpha.tenant):
        assert _clinician_name() == "alpha clinician"
        with pytest.raises(IntegrityError):
            duplicate_in_beta()
        assert _search_path().startswith("t_alpha,")
        assert _clinician_name() == "alpha clinician"


def test_failed_statement_inside_nested_atomics_keeps_the_tenant(alpha: TenantWorld) -> None:
    def duplicate() -> None:
        with transaction.atomic():
            User.objects.create(id=CLINICIAN_ID, email="dupe@example.com")

    with tenant_context(alpha.tenant), transaction.atomic():
        with pytest.raises(IntegrityError):
            duplicate()
        assert _search_path().startswith("t_alpha,")
        assert _clinician_name() == "alpha clinician"


def test_every_switch_re_issues_the_path(alpha: TenantWorld, beta: TenantWorld) -> None:
    for world, name in [
        (alpha, "alpha clinician"),
        (beta, "beta clinician"),
        (alpha, "alpha clinician"),
    ]:
        with tenant_context(world.tenant):
            assert _clinician_name() == name
            assert _search_path().startswith(f"t_{world.tenant.slug},")


def test_each_request_sets_its_tenant_path_and_a_switch_reads_the_other_tenant(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    """django-tenants' own backend (no memory of the session's path across requests, issue 22
    item 3): every request's first statement sets its tenant's path, so a persistent connection
    that served beta never answers alpha's request with beta's rows."""
    from tests.conftest import login
    from tests.query_budget import count_queries

    alpha_client, beta_client = login(alpha), login(beta)
    alpha_client.get("/api/v1/users/")
    _, again = count_queries(lambda: alpha_client.get("/api/v1/users/"))
    assert again[0] == 'SET search_path = "t_alpha","public"'
    _, switched = count_queries(lambda: beta_client.get("/api/v1/users/"))
    assert switched[0] == 'SET search_path = "t_beta","public"'
    response, back = count_queries(lambda: alpha_client.get("/api/v1/users/"))
    assert back[0] == 'SET search_path = "t_alpha","public"'
    assert response.json()["results"][0]["email"] == "admin@example.com"


def test_one_set_per_request_not_per_statement(alpha: TenantWorld) -> None:
    from tests.conftest import login
    from tests.query_budget import count_queries

    client = login(alpha)
    client.get("/api/v1/users/")
    _, statements = count_queries(lambda: client.get("/api/v1/users/"))
    sets = [sql for sql in statements if sql.startswith("SET search_path")]
    assert len(sets) == 1
    assert len(statements) >= 1
