"""The per-request platform cost on a trivial authenticated endpoint: routing comes from a
per-process cache, the user is read once per request by primary key (issue 22 item 3: no
per-process memory of user instances), and the throttle makes a single Redis round trip
(tests/apikit/test_throttling.py counts it). Reading the user every time means any change to it,
through services or not, is seen by the next request."""

from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.services import user_update
from tests.conftest import CLINICIAN_EMAIL, CLINICIAN_ID, TenantWorld, login
from tests.query_budget import count_queries


def test_warm_authenticated_request_reads_only_the_user(alpha: TenantWorld) -> None:
    client = login(alpha)
    client.get("/api/v1/auth/me/")  # warm the routing cache
    response, statements = count_queries(lambda: client.get("/api/v1/auth/me/"))
    assert response.status_code == 200
    reads = [sql for sql in statements if not sql.startswith("SET search_path")]
    assert len(reads) == 1
    assert 'FROM "accounts_user"' in reads[0]


def test_each_tenant_reads_its_own_user(alpha: TenantWorld, beta: TenantWorld) -> None:
    """The same user id in two tenants: each host answers with its own tenant's user."""
    alpha_client = login(alpha, email=CLINICIAN_EMAIL)
    beta_client = login(beta, email=CLINICIAN_EMAIL)
    for _ in range(2):
        assert alpha_client.get("/api/v1/auth/me/").json()["full_name"] == "alpha clinician"
        assert beta_client.get("/api/v1/auth/me/").json()["full_name"] == "beta clinician"


def test_changes_through_services_are_seen_by_the_next_request(alpha: TenantWorld) -> None:
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


def test_a_change_made_without_services_is_seen_too(alpha: TenantWorld, beta: TenantWorld) -> None:
    alpha_client = login(alpha, email=CLINICIAN_EMAIL)
    beta_client = login(beta, email=CLINICIAN_EMAIL)
    assert alpha_client.get("/api/v1/auth/me/").status_code == 200
    with tenant_context(alpha.tenant):
        User.objects.filter(pk=CLINICIAN_ID).update(is_active=False)
    response = alpha_client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "user_inactive"
    # beta's user with the same id is untouched.
    assert beta_client.get("/api/v1/auth/me/").status_code == 200


def test_a_deleted_user_is_refused_and_the_other_tenant_is_not(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    alpha_client = login(alpha, email=CLINICIAN_EMAIL)
    beta_client = login(beta, email=CLINICIAN_EMAIL)
    assert alpha_client.get("/api/v1/auth/me/").status_code == 200
    with tenant_context(alpha.tenant):
        User.objects.filter(pk=CLINICIAN_ID).delete()
    response = alpha_client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "user_not_found"
    assert beta_client.get("/api/v1/auth/me/").json()["full_name"] == "beta clinician"
