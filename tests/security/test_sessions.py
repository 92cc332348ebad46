"""Issue 21, item 4: a password change ends every session at once — the user's JWTs (access and
refresh) and Django sessions on other browsers — whether an admin resets it through the API or
through the Django admin (driven over HTTP: session cookie, CSRF token, forms), or the user
changes it in the admin. Tenant B's user with the same id and email is never affected."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from tests.security.admin_session import admin_session, csrf_token
from tests.security.conftest import SecurityWorld
from tests.security.world import SHARED, USER_IDS, Side, email_for

pytestmark = pytest.mark.security

NURSE = USER_IDS["nurse"]
ADMIN = USER_IDS["tenant_admin"]
PATIENT = SHARED["clinical.patient"]
PATIENT_URL = f"/api/v1/clinical/patients/{PATIENT}/"
NEW_PASSWORD = "Changed-Secret-Pass-7"


def _tokens(sw: SecurityWorld, side: Side, role: str, password: str = "") -> dict[str, str]:
    response = sw.client(side).post(
        "/api/v1/auth/token/",
        {"email": email_for(role), "password": password or side.password},
        format="json",
    )
    assert response.status_code == 200, response.content
    return dict(response.json())


def _read_patient(sw: SecurityWorld, side: Side, access: str) -> Any:
    client = sw.client(side)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get(PATIENT_URL)


def _rotate(sw: SecurityWorld, side: Side, refresh: str) -> Any:
    return sw.client(side).post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")


def _assert_401_envelope(response: Any) -> None:
    assert response.status_code == 401, response.content[:300]
    error = response.json()["error"]
    assert error["status"] == 401
    assert error["code"] == "token_not_valid"


def _assert_tokens_ended(sw: SecurityWorld, side: Side, tokens: dict[str, str]) -> None:
    refused = _read_patient(sw, side, tokens["access"])
    _assert_401_envelope(refused)
    assert side.marker not in refused.content.decode()
    _assert_401_envelope(_rotate(sw, side, tokens["refresh"]))


def _assert_tokens_work(sw: SecurityWorld, side: Side, tokens: dict[str, str]) -> None:
    assert _read_patient(sw, side, tokens["access"]).status_code == 200
    rotated = _rotate(sw, side, tokens["refresh"])
    assert rotated.status_code == 200, rotated.content
    assert _read_patient(sw, side, rotated.json()["access"]).status_code == 200


def _submit(browser: Client, path: str, data: dict[str, str]) -> Any:
    """GET the admin form at ``path``, then POST it back with its CSRF token."""
    return browser.post(path, {"csrfmiddlewaretoken": csrf_token(browser, path), **data})


def _admin_browser(side: Side) -> Client:
    browser = admin_session(side)
    assert browser.get("/admin/").status_code == 200
    return browser


def _signed_in(browser: Client) -> bool:
    response = browser.get("/admin/")
    if response.status_code == 302:
        assert response["Location"].startswith("/admin/login/"), response["Location"]
        return False
    assert response.status_code == 200, response.status_code
    return True


def _assert_b_untouched(sw: SecurityWorld) -> None:
    """B's nurse and admin (same ids and emails as A's) keep their tokens and password."""
    for role in ("nurse", "tenant_admin"):
        client = sw.client(sw.b, role)
        assert client.get(PATIENT_URL).status_code == 200, role
    with schema_context(sw.b.schema):
        for pk in (NURSE, ADMIN):
            user = User.objects.get(pk=pk)
            assert user.credentials_version == 0
            assert user.check_password(sw.b.password)


def test_admin_reset_through_the_api_ends_the_nurses_tokens(sw: SecurityWorld) -> None:
    nurse = _tokens(sw, sw.a, "nurse")
    assert _read_patient(sw, sw.a, nurse["access"]).status_code == 200
    response = sw.client(sw.a, "tenant_admin").post(
        f"/api/v1/users/{NURSE}/set-password/", {"password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content

    _assert_tokens_ended(sw, sw.a, nurse)
    # The world's own token for her, issued when the tenant was seeded, ended too.
    _assert_401_envelope(sw.client(sw.a, "nurse").get(PATIENT_URL))
    _assert_tokens_work(sw, sw.a, _tokens(sw, sw.a, "nurse", NEW_PASSWORD))
    _assert_b_untouched(sw)


def test_admin_reset_through_the_django_admin_ends_the_nurses_tokens(sw: SecurityWorld) -> None:
    nurse = _tokens(sw, sw.a, "nurse")
    assert _read_patient(sw, sw.a, nurse["access"]).status_code == 200
    browser = _admin_browser(sw.a)
    form = f"/admin/accounts/user/{NURSE}/password/"
    fields = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    # The form is CSRF-protected: without its token nothing changes.
    assert browser.post(form, fields).status_code == 403
    assert _read_patient(sw, sw.a, nurse["access"]).status_code == 200

    response = _submit(browser, form, fields)
    assert response.status_code == 302, response.content[:500]
    assert _signed_in(browser)  # the admin's own session is not the nurse's
    _assert_tokens_ended(sw, sw.a, nurse)
    _assert_tokens_work(sw, sw.a, _tokens(sw, sw.a, "nurse", NEW_PASSWORD))
    _assert_b_untouched(sw)


def test_admin_sets_an_unusable_password_in_the_django_admin(sw: SecurityWorld) -> None:
    nurse = _tokens(sw, sw.a, "nurse")
    response = _submit(
        _admin_browser(sw.a),
        f"/admin/accounts/user/{NURSE}/password/",
        {"usable_password": "false", "unset-password": "1"},
    )
    assert response.status_code == 302, response.content[:500]
    _assert_tokens_ended(sw, sw.a, nurse)
    with schema_context(sw.a.schema):
        assert not User.objects.get(pk=NURSE).has_usable_password()


def test_self_service_password_change_ends_other_sessions_and_tokens(sw: SecurityWorld) -> None:
    """The admin changes her own password in browser 1: browser 1 stays signed in (Django
    updates its session hash), browser 2 and every token of hers end."""
    tokens = _tokens(sw, sw.a, "tenant_admin")
    here, elsewhere = _admin_browser(sw.a), _admin_browser(sw.a)
    response = _submit(
        here,
        "/admin/password_change/",
        {
            "old_password": sw.a.password,
            "new_password1": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
        },
    )
    assert response.status_code == 302, response.content[:500]
    assert response["Location"] == "/admin/password_change/done/"

    assert _signed_in(here)
    assert not _signed_in(elsewhere)
    _assert_tokens_ended(sw, sw.a, tokens)
    _assert_401_envelope(sw.client(sw.a, "tenant_admin").get(PATIENT_URL))
    _assert_tokens_work(sw, sw.a, _tokens(sw, sw.a, "tenant_admin", NEW_PASSWORD))
    _assert_b_untouched(sw)
