"""Tenant A's rows are invisible from tenant B through the ORM and Django admin."""

from django.test import Client
from django_tenants.utils import tenant_context

from accounts.models import User
from tests.conftest import ADMIN_EMAIL, CLINICIAN_ID, TenantWorld


def test_orm_sees_only_the_active_tenants_rows(alpha: TenantWorld, beta: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        assert User.objects.get(pk=CLINICIAN_ID).full_name == "alpha clinician"
        User.objects.create(email="alpha-extra@example.com", role="viewer")
    with tenant_context(beta.tenant):
        assert User.objects.get(pk=CLINICIAN_ID).full_name == "beta clinician"
        assert not User.objects.filter(email="alpha-extra@example.com").exists()


def _admin_client(world: TenantWorld) -> Client:
    client = Client(HTTP_HOST=world.host)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": ADMIN_EMAIL, "password": world.password},
    )
    assert response.status_code == 302, response.content[:500]
    return client


def test_tenant_admin_sees_only_own_users(alpha: TenantWorld, beta: TenantWorld) -> None:
    page = _admin_client(alpha).get("/admin/accounts/user/")
    assert page.status_code == 200
    assert b"alpha clinician" in page.content
    assert b"beta clinician" not in page.content
    detail = _admin_client(alpha).get(f"/admin/accounts/user/{CLINICIAN_ID}/change/")
    assert detail.status_code == 200
    assert b"alpha clinician" in detail.content
    assert b"beta clinician" not in detail.content


def test_admin_session_cookie_is_useless_on_another_tenants_host(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    alpha_admin = _admin_client(alpha)
    session_cookie = alpha_admin.cookies["sessionid"].value
    assert alpha_admin.get("/admin/").status_code == 200

    replay = Client(HTTP_HOST=beta.host)
    replay.cookies["sessionid"] = session_cookie
    response = replay.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_tenant_admin_cannot_log_in_to_another_tenants_admin(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    response = Client(HTTP_HOST=beta.host).post(
        "/admin/login/?next=/admin/", {"username": ADMIN_EMAIL, "password": alpha.password}
    )
    assert response.status_code == 200  # the login form again, with an error
    assert b"Please enter the correct" in response.content


def test_non_admin_roles_cannot_use_the_tenant_admin(alpha: TenantWorld) -> None:
    response = Client(HTTP_HOST=alpha.host).post(
        "/admin/login/?next=/admin/",
        {"username": "clinician@example.com", "password": alpha.password},
    )
    assert response.status_code == 200
    assert b"Please enter the correct" in response.content


def test_tenant_registry_is_not_on_the_tenant_admin(alpha: TenantWorld) -> None:
    client = _admin_client(alpha)
    assert client.get("/admin/tenants/tenant/").status_code == 404
    index = client.get("/admin/")
    assert b"Tenants" not in index.content
