"""Host -> tenant routing: JSON errors, suspension, cached lookup, invalidation."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from tenants.models import Domain, Tenant
from tenants.routing import TenantRouter
from tenants.services import tenant_archive, tenant_set_status
from tests.conftest import TenantWorld, login


def test_unknown_tenant_host_answers_404_envelope(db: None) -> None:
    response = APIClient(HTTP_HOST="nobody.verdant.test").get("/api/v1/auth/me/")
    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "status": 404,
            "code": "tenant_not_found",
            "detail": "No tenant is served at this host name. Check the URL.",
        }
    }


def test_host_outside_base_domain_answers_404_envelope(db: None) -> None:
    response = APIClient(HTTP_HOST="evil.example.com").get("/api/v1/auth/me/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "tenant_not_found"


def test_template_schema_is_never_routable(db: None) -> None:
    template = Tenant.objects.get(is_template=True)
    Domain.objects.create(domain="template.verdant.test", tenant=template)
    response = APIClient(HTTP_HOST="template.verdant.test").get("/api/v1/auth/me/")
    assert response.status_code == 404


def test_suspended_tenant_answers_403_and_other_tenant_keeps_working(
    alpha: TenantWorld, beta: TenantWorld, django_capture_on_commit_callbacks: pytest.FixtureRequest
) -> None:
    beta_client = login(beta)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        tenant_archive(slug="alpha")
    response = alpha.client().post(
        "/api/v1/auth/token/",
        {"email": "admin@example.com", "password": alpha.password},
        format="json",
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_suspended"
    assert beta_client.get("/api/v1/auth/me/").status_code == 200

    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        tenant_set_status(slug="alpha", status=Tenant.Status.ACTIVE)
    assert login(alpha).get("/api/v1/auth/me/").status_code == 200


def test_warm_request_issues_no_domain_query(alpha: TenantWorld) -> None:
    client = login(alpha)
    client.get("/api/v1/auth/me/")  # warm
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/api/v1/auth/me/")
    assert response.status_code == 200
    statements = [q["sql"] for q in queries.captured_queries]
    assert not [sql for sql in statements if "tenants_domain" in sql or "tenants_tenant" in sql]


def test_change_published_by_one_process_reaches_another(
    alpha: TenantWorld, settings: object
) -> None:
    """Two routers stand for two web processes sharing Redis."""
    from django.conf import settings as django_settings

    clock = [0.0]
    kwargs = {
        "redis_url": django_settings.REDIS_URL,
        "key_prefix": django_settings.CACHES["default"]["KEY_PREFIX"],
        "recheck_seconds": 1.0,
        "clock": lambda: clock[0],
    }
    reader, writer = TenantRouter(**kwargs), TenantRouter(**kwargs)  # type: ignore[arg-type]
    first = reader.resolve(alpha.host)
    assert first is not None
    assert not first.is_suspended

    Tenant.objects.filter(slug="alpha").update(status=Tenant.Status.SUSPENDED)
    writer.publish_change()
    # Within the recheck interval the reader still trusts its copy...
    clock[0] = 0.5
    cached = reader.resolve(alpha.host)
    assert cached is not None
    assert not cached.is_suspended
    # ...and after it, sees the change.
    clock[0] = 1.6
    fresh = reader.resolve(alpha.host)
    assert fresh is not None
    assert fresh.is_suspended


def test_router_hands_out_private_copies(alpha: TenantWorld) -> None:
    from tenants.routing import get_router

    first = get_router().resolve(alpha.host)
    second = get_router().resolve(alpha.host)
    assert first is not None
    assert second is not None
    assert first is not second
    first.domain_url = "tampered"
    assert getattr(second, "domain_url", None) != "tampered"


def test_router_falls_back_to_ttl_when_redis_is_down(alpha: TenantWorld) -> None:
    clock = [0.0]
    router = TenantRouter(
        redis_url="redis://127.0.0.1:1/0",
        key_prefix="x",
        recheck_seconds=1.0,
        clock=lambda: clock[0],
    )
    assert router.resolve(alpha.host) is not None
    Tenant.objects.filter(slug="alpha").update(status=Tenant.Status.SUSPENDED)
    clock[0] = 10.0
    cached = router.resolve(alpha.host)
    assert cached is not None
    assert not cached.is_suspended
    clock[0] = 45.0
    fresh = router.resolve(alpha.host)
    assert fresh is not None
    assert fresh.is_suspended


def test_public_host_serves_operator_admin_not_tenant_api(db: None) -> None:
    client = APIClient(HTTP_HOST="verdant.test")
    assert client.get("/api/v1/auth/me/").status_code == 404
    login_page = client.get("/admin/login/")
    assert login_page.status_code == 200
    assert b"Verdant platform operations" in login_page.content
