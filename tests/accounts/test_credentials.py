"""Issue 21, item 4: a stored password change ends every token of the user at once (claim ``cv``
against ``User.credentials_version``, refresh tokens blacklisted, cached users dropped); the hash
upgrade at login does not. Both tenants hold a clinician with the same id and email."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_context, tenant_context
from rest_framework.test import APIClient
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

from accounts.authentication import CREDENTIALS_CHANGED_DETAIL
from accounts.hashers import Argon2idHasher
from accounts.models import User
from accounts.services import user_password_set, user_update
from audit.models import AuditEvent
from settings import base
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL, CLINICIAN_ID, TenantWorld, login

TOKEN_URL = "/api/v1/auth/token/"
REFRESH_URL = "/api/v1/auth/token/refresh/"
ME_URL = "/api/v1/auth/me/"
NEW_PASSWORD = "fresh-Clinician-Pass-9"


def _pair(world: TenantWorld, *, email: str = CLINICIAN_EMAIL, password: str = "") -> Any:
    response = world.client().post(
        TOKEN_URL, {"email": email, "password": password or world.password}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _bearer(world: TenantWorld, access: str) -> APIClient:
    client = world.client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


def _me(world: TenantWorld, access: str) -> Any:
    return _bearer(world, access).get(ME_URL)


def _rotate(world: TenantWorld, refresh: str) -> Any:
    return world.client().post(REFRESH_URL, {"refresh": refresh}, format="json")


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, str(settings.SIMPLE_JWT["SIGNING_KEY"]), algorithms=["HS256"]))


def _version(world: TenantWorld, pk: Any = CLINICIAN_ID) -> int:
    with tenant_context(world.tenant):
        return User.objects.get(pk=pk).credentials_version


def _assert_token_refused(response: Any) -> None:
    assert response.status_code == 401, response.content
    assert response.json()["error"]["status"] == 401
    assert response.json()["error"]["code"] == "token_not_valid"


def _assert_pair_refused(world: TenantWorld, pair: Any) -> None:
    stale = _me(world, pair["access"])
    _assert_token_refused(stale)
    assert stale.json()["error"]["detail"] == CREDENTIALS_CHANGED_DETAIL
    _assert_token_refused(_rotate(world, pair["refresh"]))


def _assert_pair_works(world: TenantWorld, pair: Any) -> None:
    assert _me(world, pair["access"]).status_code == 200
    rotated = _rotate(world, pair["refresh"])
    assert rotated.status_code == 200, rotated.content
    assert _me(world, rotated.json()["access"]).status_code == 200


def test_tokens_carry_the_credentials_version(alpha: TenantWorld) -> None:
    before = _pair(alpha)
    assert _claims(before["access"])["cv"] == _claims(before["refresh"])["cv"] == 0
    with tenant_context(alpha.tenant):
        user_password_set(user=User.objects.get(pk=CLINICIAN_ID), password=NEW_PASSWORD)
    after = _pair(alpha, password=NEW_PASSWORD)
    assert _claims(after["access"])["cv"] == _claims(after["refresh"])["cv"] == 1
    rotated = _rotate(alpha, after["refresh"]).json()
    assert _claims(rotated["access"])["cv"] == _claims(rotated["refresh"])["cv"] == 1


def test_admin_reset_through_the_api_ends_the_users_tokens(alpha: TenantWorld) -> None:
    old = _pair(alpha)
    assert _me(alpha, old["access"]).status_code == 200  # cached in this process from now on
    response = login(alpha).post(
        f"/api/v1/users/{CLINICIAN_ID}/set-password/", {"password": NEW_PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["id"] == str(CLINICIAN_ID)
    assert "password" not in response.json()
    assert _version(alpha) == 1

    _assert_pair_refused(alpha, old)
    with tenant_context(alpha.tenant):
        outstanding = OutstandingToken.objects.filter(user_id=CLINICIAN_ID)
        assert outstanding.count() == outstanding.filter(blacklistedtoken__isnull=False).count()
        event = AuditEvent.objects.filter(object_ids__contains=[CLINICIAN_ID]).latest("pk")
        assert event.action == AuditEvent.Action.UPDATE
        assert event.changed_fields == ["password"]
    assert (
        alpha.client()
        .post(TOKEN_URL, {"email": CLINICIAN_EMAIL, "password": alpha.password}, format="json")
        .json()["error"]["code"]
        == "invalid_credentials"
    )
    # Tokens issued after the change work.
    _assert_pair_works(alpha, _pair(alpha, password=NEW_PASSWORD))


def test_set_password_checks_strength_and_is_for_tenant_admins_only(alpha: TenantWorld) -> None:
    url = f"/api/v1/users/{CLINICIAN_ID}/set-password/"
    weak = login(alpha).post(url, {"password": "123"}, format="json")
    assert weak.status_code == 400
    assert "password" in weak.json()["error"]["fields"]
    refused = login(alpha, email=CLINICIAN_EMAIL).post(url, {"password": NEW_PASSWORD})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "permission_denied"
    assert _version(alpha) == 0
    with tenant_context(alpha.tenant):
        assert User.objects.get(pk=CLINICIAN_ID).check_password(alpha.password)


def test_an_unusable_password_ends_the_users_tokens(alpha: TenantWorld) -> None:
    old = _pair(alpha)
    with tenant_context(alpha.tenant):
        user = User.objects.get(pk=CLINICIAN_ID)
        user.set_unusable_password()
        user.save()
        assert user.credentials_version == 1
    _assert_pair_refused(alpha, old)


def test_changepassword_command_ends_the_users_tokens(
    alpha: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = _pair(alpha)
    monkeypatch.setattr("getpass.getpass", lambda prompt="": NEW_PASSWORD)
    out = io.StringIO()
    # As `manage.py tenant_command changepassword --schema=t_alpha <email>` runs it.
    with tenant_context(alpha.tenant):
        call_command("changepassword", CLINICIAN_EMAIL, stdout=out)
    assert "Password changed successfully" in out.getvalue()
    assert _version(alpha) == 1
    _assert_pair_refused(alpha, old)
    _assert_pair_works(alpha, _pair(alpha, password=NEW_PASSWORD))


class _WeakerArgon2idHasher(Argon2idHasher):
    time_cost = 1


def _older_hash(kind: str, password: str) -> str:
    """A hash of ``password`` that the production hashers verify but want to re-hash."""
    if kind == "pbkdf2":
        hasher = PBKDF2PasswordHasher()
        return hasher.encode(password, hasher.salt(), iterations=1000)
    weaker = _WeakerArgon2idHasher()
    return weaker.encode(password, weaker.salt())


@pytest.fixture
def _production_hashers() -> Iterator[None]:
    with override_settings(PASSWORD_HASHERS=base.PASSWORD_HASHERS):
        yield


@pytest.mark.usefixtures("_production_hashers")
@pytest.mark.parametrize("older", ["pbkdf2", "argon2id-weaker"])
@pytest.mark.parametrize("path", ["api", "admin"])
def test_hash_upgrade_at_login_ends_nothing(alpha: TenantWorld, older: str, path: str) -> None:
    """Django's check_password re-hashes through a setter at login (and ours, hashers.py, asks
    for it when its parameters rise): the password is the same, so no token ends."""
    email = CLINICIAN_EMAIL if path == "api" else ADMIN_EMAIL
    with tenant_context(alpha.tenant):
        user = User.objects.get(email=email)
        User.objects.filter(pk=user.pk).update(password=_older_hash(older, alpha.password))
    old = _pair(alpha, email=email)  # the API login re-hashes here already
    if path == "admin":
        with tenant_context(alpha.tenant):
            User.objects.filter(pk=user.pk).update(password=_older_hash(older, alpha.password))
        admin = Client(HTTP_HOST=alpha.host)
        response = admin.post("/admin/login/", {"username": email, "password": alpha.password})
        assert response.status_code == 302, response.content[:300]
    with tenant_context(alpha.tenant):
        upgraded = User.objects.get(pk=user.pk)
        assert upgraded.password.startswith("argon2$argon2id$v=19$m=19456,t=2,p=1$")
        assert upgraded.check_password(alpha.password)
        assert upgraded.credentials_version == 0
    assert _claims(old["access"])["cv"] == 0
    _assert_pair_works(alpha, old)


@pytest.mark.usefixtures("_production_hashers")
def test_hash_upgrade_through_acheck_password_ends_nothing(alpha: TenantWorld) -> None:
    older = User.objects.filter(pk=CLINICIAN_ID)
    with tenant_context(alpha.tenant):
        older.update(password=_older_hash("pbkdf2", alpha.password))
    old = _pair(alpha)
    with tenant_context(alpha.tenant):
        older.update(password=_older_hash("pbkdf2", alpha.password))
        user = User.objects.get(pk=CLINICIAN_ID)
        assert async_to_sync(user.acheck_password)(alpha.password)
        upgraded = User.objects.get(pk=CLINICIAN_ID)
        assert upgraded.password.startswith("argon2$argon2id$")
        assert upgraded.credentials_version == 0
    _assert_pair_works(alpha, old)


def test_other_saves_keep_the_tokens(alpha: TenantWorld) -> None:
    old = _pair(alpha)
    with tenant_context(alpha.tenant):
        user = User.objects.get(pk=CLINICIAN_ID)
        user_update(user=user, full_name="Renamed")
        # A password set but not among the saved fields is not stored, so nothing ends yet.
        user.set_password(NEW_PASSWORD)
        user.save(update_fields=["full_name"])
        assert User.objects.get(pk=CLINICIAN_ID).check_password(alpha.password)
    assert _version(alpha) == 0
    _assert_pair_works(alpha, old)


def test_a_change_in_one_tenant_leaves_the_colliding_user_of_the_other_alone(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    alpha_old, beta_old = _pair(alpha), _pair(beta)
    # Both users are cached in this process under the same id (and the same email).
    assert _me(alpha, alpha_old["access"]).status_code == 200
    assert _me(beta, beta_old["access"]).status_code == 200
    with tenant_context(alpha.tenant):
        user_password_set(user=User.objects.get(pk=CLINICIAN_ID), password=NEW_PASSWORD)
    _assert_pair_refused(alpha, alpha_old)
    assert _version(beta) == 0
    with tenant_context(beta.tenant):
        assert not OutstandingToken.objects.filter(
            user_id=CLINICIAN_ID, blacklistedtoken__isnull=False
        ).exists()
    _assert_pair_works(beta, beta_old)
    # And the other way round: beta's change leaves alpha's new tokens working.
    alpha_new = _pair(alpha, password=NEW_PASSWORD)
    with tenant_context(beta.tenant):
        user_password_set(user=User.objects.get(pk=CLINICIAN_ID), password=NEW_PASSWORD)
    assert _version(alpha) == _version(beta) == 1
    _assert_pair_works(alpha, alpha_new)


def _reads(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if not q["sql"].startswith("SET ")]


def test_a_stale_token_is_refused_after_one_read_of_the_user(alpha: TenantWorld) -> None:
    """The user is read on every request (no per-process copy, issue 22 item 3): the ``cv``
    check costs that one read and nothing more, for a current token and a stale one alike."""
    old = _pair(alpha)
    with tenant_context(alpha.tenant):
        user_password_set(user=User.objects.get(pk=CLINICIAN_ID), password=NEW_PASSWORD)
    new = _pair(alpha, password=NEW_PASSWORD)
    current, stale = _bearer(alpha, new["access"]), _bearer(alpha, old["access"])
    assert current.get(ME_URL).status_code == 200  # warm the routing cache
    with CaptureQueriesContext(connection) as served:
        assert current.get(ME_URL).status_code == 200
    with CaptureQueriesContext(connection) as refused:
        _assert_token_refused(stale.get(ME_URL))
    assert len(_reads(served)) == 1
    assert [sql for sql in _reads(refused) if 'FROM "accounts_user"' in sql] == _reads(refused)
    assert len(_reads(refused)) == 1


def test_an_operators_password_change_in_public_bumps_the_version(db: None) -> None:
    """Platform operators live in public, which has no JWT blacklist table: nothing to revoke
    there, and the change must not fail on it."""
    with schema_context("public"):
        operator = User.objects.create_superuser("operator@example.com", "operator-Pass-123")
        assert operator.credentials_version == 0
        operator.set_password("operator-Pass-456")
        operator.save()
        assert User.objects.get(pk=operator.pk).credentials_version == 1
