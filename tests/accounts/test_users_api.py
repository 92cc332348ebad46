"""/api/v1/users/: tenant_admin manages staff; other roles are refused; tenants never mix."""

import pytest
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL, CLINICIAN_ID, TenantWorld, login

USERS_URL = "/api/v1/users/"


def test_admin_lists_only_own_tenants_users(alpha: TenantWorld, beta: TenantWorld) -> None:
    with tenant_context(beta.tenant):
        user_create(email="beta-only@example.com", role=Role.VIEWER, password=None)
    response = login(alpha).get(USERS_URL)
    assert response.status_code == 200
    emails = [row["email"] for row in response.json()["results"]]
    assert emails == [ADMIN_EMAIL, CLINICIAN_EMAIL]
    clinician = next(row for row in response.json()["results"] if row["email"] == CLINICIAN_EMAIL)
    assert clinician["id"] == str(CLINICIAN_ID)


@pytest.mark.parametrize("role", [r for r in Role.values if r != Role.TENANT_ADMIN])
def test_other_roles_are_refused(alpha: TenantWorld, role: str) -> None:
    with tenant_context(alpha.tenant):
        user_create(
            email=f"{role}@example.org", role=role, password="role-Password-1", is_active=True
        )
    client = login(alpha, email=f"{role}@example.org", password="role-Password-1")
    assert client.get(USERS_URL).status_code == 403
    created = client.post(USERS_URL, {"email": "x@example.org", "role": "viewer"}, format="json")
    assert created.status_code == 403
    assert created.json()["error"]["code"] == "permission_denied"
    with tenant_context(alpha.tenant):
        assert not User.objects.filter(email="x@example.org").exists()


def test_anonymous_is_refused(alpha: TenantWorld) -> None:
    response = alpha.client().get(USERS_URL)
    assert response.status_code == 401


def test_admin_creates_an_active_user_who_can_log_in(alpha: TenantWorld, beta: TenantWorld) -> None:
    response = login(alpha).post(
        USERS_URL,
        {
            "email": "Nurse@Example.com",
            "role": "nurse",
            "password": "nurse-Password-7",
            "full_name": "N",
            # The admin says active: no verification needed (the default is inactive).
            "is_active": True,
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "nurse@example.com"
    assert body["role"] == "nurse"
    assert body["is_active"]
    assert login(alpha, email="nurse@example.com", password="nurse-Password-7")
    with tenant_context(beta.tenant):
        assert not User.objects.filter(email="nurse@example.com").exists()


def test_create_validates_input(alpha: TenantWorld) -> None:
    client = login(alpha)
    response = client.post(USERS_URL, {"email": "bad", "role": "wizard"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"email", "role"}
    weak = client.post(
        USERS_URL, {"email": "w@example.com", "role": "nurse", "password": "123"}, format="json"
    )
    assert weak.status_code == 400
    assert "password" in weak.json()["error"]["fields"]
    taken = client.post(USERS_URL, {"email": CLINICIAN_EMAIL, "role": "nurse"}, format="json")
    assert taken.status_code == 400
    assert taken.json()["error"]["fields"] == {"email": ["A user with this email already exists."]}


def test_create_ignores_server_managed_fields(alpha: TenantWorld) -> None:
    response = login(alpha).post(
        USERS_URL,
        {
            "email": "sneaky@example.com",
            "role": "viewer",
            "is_staff": True,
            "is_superuser": True,
            "id": str(CLINICIAN_ID),
        },
        format="json",
    )
    assert response.status_code == 201
    with tenant_context(alpha.tenant):
        user = User.objects.get(email="sneaky@example.com")
        assert not user.is_staff
        assert not user.is_superuser
        assert user.pk != CLINICIAN_ID


def test_change_role_touches_only_this_tenants_row(alpha: TenantWorld, beta: TenantWorld) -> None:
    response = login(alpha).patch(f"{USERS_URL}{CLINICIAN_ID}/", {"role": "nurse"}, format="json")
    assert response.status_code == 200
    assert response.json()["role"] == "nurse"
    with tenant_context(alpha.tenant):
        assert User.objects.get(pk=CLINICIAN_ID).role == Role.NURSE
    with tenant_context(beta.tenant):
        assert User.objects.get(pk=CLINICIAN_ID).role == Role.CLINICIAN


def test_deactivate_stops_tokens_at_once(alpha: TenantWorld) -> None:
    clinician = login(alpha, email=CLINICIAN_EMAIL)
    assert clinician.get("/api/v1/auth/me/").status_code == 200
    response = login(alpha).post(f"{USERS_URL}{CLINICIAN_ID}/deactivate/")
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert clinician.get("/api/v1/auth/me/").status_code == 401


def test_last_tenant_admin_cannot_be_demoted_or_deactivated(alpha: TenantWorld) -> None:
    client = login(alpha)
    with tenant_context(alpha.tenant):
        admin_id = User.objects.get(email=ADMIN_EMAIL).pk
    demote = client.patch(f"{USERS_URL}{admin_id}/", {"role": "viewer"}, format="json")
    assert demote.status_code == 409
    assert demote.json()["error"]["code"] == "last_tenant_admin"
    assert client.post(f"{USERS_URL}{admin_id}/deactivate/").status_code == 409
    with tenant_context(alpha.tenant):
        assert User.objects.get(pk=admin_id).role == Role.TENANT_ADMIN


def test_unknown_or_malformed_user_id_is_404(alpha: TenantWorld) -> None:
    client = login(alpha)
    assert client.get(f"{USERS_URL}01900000-0000-7000-8000-0000000000ff/").status_code == 404
    response = client.get(f"{USERS_URL}not-a-uuid/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_list_query_count_is_constant(
    alpha: TenantWorld, django_assert_num_queries: object
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = login(alpha)
    client.get(USERS_URL)
    with CaptureQueriesContext(connection) as few:
        client.get(USERS_URL)
    with tenant_context(alpha.tenant):
        for index in range(50):
            user_create(email=f"u{index}@example.com", role=Role.VIEWER, password=None)
    with CaptureQueriesContext(connection) as many:
        response = client.get(USERS_URL)
    assert len(response.json()["results"]) == 50
    assert len(many.captured_queries) == len(few.captured_queries)
