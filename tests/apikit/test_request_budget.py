"""The per-request platform cost on a trivial authenticated endpoint: routing and the
authenticated user both come from per-process caches (no database round trip at all when warm),
and the throttle makes a single Redis round trip (tests/apikit/test_throttling.py counts it)."""

from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.services import user_update
from tests.conftest import CLINICIAN_EMAIL, CLINICIAN_ID, TenantWorld, login
from tests.query_budget import count_queries


def test_warm_authenticated_request_needs_no_database(alpha: TenantWorld) -> None:
    client = login(alpha)
    client.get("/api/v1/auth/me/")  # warm the routing and user caches
    response, statements = count_queries(lambda: client.get("/api/v1/auth/me/"))
    assert response.status_code == 200
    assert statements == []


def test_the_user_cache_is_per_tenant(alpha: TenantWorld, beta: TenantWorld) -> None:
    """The same user id in two tenants: each host answers with its own tenant's user."""
    alpha_client = login(alpha, email=CLINICIAN_EMAIL)
    beta_client = login(beta, email=CLINICIAN_EMAIL)
    for _ in range(2):
        assert alpha_client.get("/api/v1/auth/me/").json()["full_name"] == "alpha clinician"
        assert beta_client.get("/api/v1/auth/me/").json()["full_name"] == "beta clinician"


def test_changes_through_services_reach_the_cache_at_once(alpha: TenantWorld) -> None:
    client = login(alpha, email=CLINICIAN_EMAIL)
    assert client.get("/api/v1/auth/me/").json()["role"] == "clinician"
    with tenant_context(alpha.tenant):
        user_update(user=User.objects.get(pk=CLINICIAN_ID), role="nurse")
    assert client.get("/api/v1/auth/me/").json()["role"] == "nurse"
    with tenant_context(alpha.tenant):
        user_update(user=User.objects.get(pk=CLINICIAN_ID), is_active=False)
    response = client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "user_inactive"
