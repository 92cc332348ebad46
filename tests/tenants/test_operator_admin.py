"""Platform operators manage tenants in the admin on the public host."""

import pytest
from django.test import Client
from django_tenants.utils import schema_exists

from tenants.models import Plan, Tenant
from tests.conftest import ADMIN_EMAIL, TenantWorld
from tests.tenants.operators import operator_client

OPERATOR_EMAIL = "ops@verdant.example"
OPERATOR_PASSWORD = "ops-Password-77"


@pytest.fixture
def operator(db: None) -> Client:
    return operator_client(email=OPERATOR_EMAIL, password=OPERATOR_PASSWORD)


def test_operator_sees_tenants_but_not_the_template(operator: Client, alpha: TenantWorld) -> None:
    page = operator.get("/admin/tenants/tenant/")
    assert page.status_code == 200
    assert b"alpha" in page.content
    assert b"beta" in page.content
    assert b"__template__" not in page.content


def test_operator_provisions_a_tenant_from_the_admin(
    operator: Client, django_capture_on_commit_callbacks: pytest.FixtureRequest
) -> None:
    plan = Plan.objects.get(name="starter")
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = operator.post(
            "/admin/tenants/tenant/add/",
            {
                "slug": "delta",
                "name": "Delta Farms",
                "kind": "farm",
                "plan": plan.pk,
                "admin_email": "boss@delta.example",
                "admin_password": "",
            },
        )
    assert response.status_code == 302, response.content[:2000]
    tenant = Tenant.objects.get(slug="delta")
    assert tenant.ready
    assert tenant.plan == plan
    assert schema_exists("t_delta")


def test_operator_suspends_a_tenant_and_its_api_answers_403(
    operator: Client, alpha: TenantWorld, django_capture_on_commit_callbacks: pytest.FixtureRequest
) -> None:
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = operator.post(
            "/admin/tenants/tenant/",
            {"action": "suspend", "_selected_action": [alpha.tenant.pk]},
        )
    assert response.status_code == 302
    api = alpha.client().post(
        "/api/v1/auth/token/", {"email": ADMIN_EMAIL, "password": alpha.password}, format="json"
    )
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "tenant_suspended"


def test_tenant_admin_cannot_log_in_on_the_public_host(alpha: TenantWorld) -> None:
    response = Client(HTTP_HOST="verdant.test").post(
        "/admin/login/?next=/admin/", {"username": ADMIN_EMAIL, "password": alpha.password}
    )
    assert response.status_code == 200
    assert b"Please enter the correct" in response.content


def test_operator_session_is_useless_on_a_tenant_host(operator: Client, alpha: TenantWorld) -> None:
    replay = Client(HTTP_HOST=alpha.host)
    replay.cookies["sessionid"] = operator.cookies["sessionid"].value
    response = replay.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
