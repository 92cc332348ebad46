"""Login, refresh rotation, logout and who-am-I, with two tenants holding colliding users."""

import jwt
import pytest
from django.conf import settings
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL, CLINICIAN_ID, TenantWorld, login

TOKEN_URL = "/api/v1/auth/token/"
REFRESH_URL = "/api/v1/auth/token/refresh/"
LOGOUT_URL = "/api/v1/auth/logout/"
ME_URL = "/api/v1/auth/me/"

INVALID_CREDENTIALS = {
    "error": {
        "status": 401,
        "code": "invalid_credentials",
        "detail": "Email or password is incorrect.",
    }
}


def _obtain(world: TenantWorld, email: str, password: str) -> tuple[int, dict[str, object]]:
    response = world.client().post(TOKEN_URL, {"email": email, "password": password}, format="json")
    return response.status_code, response.json()


def _claims(token: str) -> dict[str, object]:
    return jwt.decode(token, str(settings.SIMPLE_JWT["SIGNING_KEY"]), algorithms=["HS256"])


def test_login_returns_tenant_bound_tokens(alpha: TenantWorld) -> None:
    status, body = _obtain(alpha, CLINICIAN_EMAIL, alpha.password)
    assert status == 200
    access, refresh = _claims(str(body["access"])), _claims(str(body["refresh"]))
    assert access["tid"] == refresh["tid"] == "t_alpha"
    assert access["role"] == refresh["role"] == "clinician"
    assert access["user_id"] == str(CLINICIAN_ID)
    assert access["token_type"] == "access"
    assert refresh["token_type"] == "refresh"


def test_login_email_is_case_insensitive(alpha: TenantWorld) -> None:
    status, _ = _obtain(alpha, "  Clinician@EXAMPLE.com ", alpha.password)
    assert status == 200


@pytest.mark.parametrize(
    ("email", "password_of"),
    [
        ("nobody@example.com", "alpha"),  # unknown email
        (CLINICIAN_EMAIL, "wrong"),  # wrong password
        (CLINICIAN_EMAIL, "beta"),  # the same email's password in the other tenant
    ],
    ids=["unknown-email", "wrong-password", "other-tenants-password"],
)
def test_bad_credentials_get_one_identical_answer(
    alpha: TenantWorld, beta: TenantWorld, email: str, password_of: str
) -> None:
    password = {"alpha": alpha.password, "beta": beta.password}.get(password_of, "not-it-123")
    assert _obtain(alpha, email, password) == (401, INVALID_CREDENTIALS)


def test_user_of_another_tenant_cannot_log_in_here(alpha: TenantWorld, beta: TenantWorld) -> None:
    with tenant_context(beta.tenant):
        user_create(
            email="only-beta@example.com", role=Role.NURSE, password="beta-Only-123", is_active=True
        )
    assert _obtain(alpha, "only-beta@example.com", "beta-Only-123") == (401, INVALID_CREDENTIALS)
    assert _obtain(beta, "only-beta@example.com", "beta-Only-123")[0] == 200


def test_inactive_account_is_only_revealed_with_the_right_password(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        user_create(email="new@example.com", role=Role.NURSE, password="new-Person-123")
    assert _obtain(alpha, "new@example.com", "wrong-one-123") == (401, INVALID_CREDENTIALS)
    status, body = _obtain(alpha, "new@example.com", "new-Person-123")
    assert status == 401
    assert body["error"]["code"] == "account_inactive"  # type: ignore[index]


def test_missing_or_malformed_login_input_is_a_validation_error(alpha: TenantWorld) -> None:
    response = alpha.client().post(TOKEN_URL, {"email": ADMIN_EMAIL}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"
    assert response.json()["error"]["fields"] == {"password": ["This field is required."]}
    garbled = alpha.client().post(TOKEN_URL, "{not json", content_type="application/json")
    assert garbled.status_code == 400
    assert garbled.json()["error"]["code"] == "parse_error"


def test_access_token_is_rejected_on_another_tenants_host(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    _, body = _obtain(alpha, CLINICIAN_EMAIL, alpha.password)
    on_beta = beta.client()
    on_beta.credentials(HTTP_AUTHORIZATION=f"Bearer {body['access']}")
    response = on_beta.get(ME_URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def test_me_describes_the_user_and_tenant(alpha: TenantWorld) -> None:
    response = login(alpha, email=CLINICIAN_EMAIL).get(ME_URL)
    assert response.status_code == 200
    assert response.json() == {
        "id": str(CLINICIAN_ID),
        "email": CLINICIAN_EMAIL,
        "full_name": "alpha clinician",
        "role": "clinician",
        "tenant": {"slug": "alpha", "name": "Alpha Org", "kind": "mixed"},
    }


def test_me_requires_authentication(alpha: TenantWorld) -> None:
    response = alpha.client().get(ME_URL)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_refresh_rotates_and_the_old_token_cannot_be_reused(alpha: TenantWorld) -> None:
    _, first = _obtain(alpha, CLINICIAN_EMAIL, alpha.password)
    client = alpha.client()
    rotated = client.post(REFRESH_URL, {"refresh": first["refresh"]}, format="json")
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh"] != first["refresh"]
    assert _claims(second["access"])["tid"] == "t_alpha"

    reused = client.post(REFRESH_URL, {"refresh": first["refresh"]}, format="json")
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "token_not_valid"
    # Reuse means the token leaked: the whole family is revoked, including the newest one.
    after_theft = client.post(REFRESH_URL, {"refresh": second["refresh"]}, format="json")
    assert after_theft.status_code == 401


def test_refresh_picks_up_a_changed_role(alpha: TenantWorld) -> None:
    _, tokens = _obtain(alpha, CLINICIAN_EMAIL, alpha.password)
    with tenant_context(alpha.tenant):
        User.objects.filter(pk=CLINICIAN_ID).update(role=Role.NURSE)
    rotated = alpha.client().post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json")
    assert _claims(rotated.json()["access"])["role"] == "nurse"


def test_refresh_token_of_another_tenant_is_rejected(alpha: TenantWorld, beta: TenantWorld) -> None:
    _, tokens = _obtain(alpha, CLINICIAN_EMAIL, alpha.password)
    response = beta.client().post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 401
    # ...and it still works at home: the attempt on beta did not blacklist it there.
    assert (
        alpha.client().post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json").status_code
        == 200
    )


def test_refresh_rejects_garbage_access_tokens_and_inactive_users(alpha: TenantWorld) -> None:
    _, tokens = _obtain(alpha, CLINICIAN_EMAIL, alpha.password)
    client = alpha.client()
    assert client.post(REFRESH_URL, {"refresh": "garbage"}, format="json").status_code == 401
    assert client.post(REFRESH_URL, {"refresh": tokens["access"]}, format="json").status_code == 401
    with tenant_context(alpha.tenant):
        User.objects.filter(pk=CLINICIAN_ID).update(is_active=False)
    assert (
        client.post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json").status_code == 401
    )


def test_logout_blacklists_the_refresh_token(alpha: TenantWorld) -> None:
    _, tokens = _obtain(alpha, CLINICIAN_EMAIL, alpha.password)
    client = alpha.client()
    assert client.post(LOGOUT_URL, {"refresh": tokens["refresh"]}, format="json").status_code == 204
    assert client.post(LOGOUT_URL, {"refresh": tokens["refresh"]}, format="json").status_code == 204
    response = client.post(REFRESH_URL, {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 401


def test_logout_with_another_tenants_token_is_rejected(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    _, tokens = _obtain(alpha, CLINICIAN_EMAIL, alpha.password)
    assert (
        beta.client().post(LOGOUT_URL, {"refresh": tokens["refresh"]}, format="json").status_code
        == 401
    )
