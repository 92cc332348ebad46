"""The per-process memory of verified access tokens never accepts what simplejwt would refuse:
expired tokens, tokens of another tenant, altered copies of a remembered token."""

import time

import jwt
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import _VerifiedTokens
from tests.conftest import ADMIN_EMAIL, TenantWorld, login

ME_URL = "/api/v1/auth/me/"


def _access_token(world: TenantWorld) -> str:
    client = world.client()
    response = client.post(
        "/api/v1/auth/token/",
        {"email": ADMIN_EMAIL, "password": world.password},
        format="json",
    )
    assert response.status_code == 200
    return str(response.json()["access"])


def _me(world: TenantWorld, token: str) -> tuple[int, str]:
    response = world.client().get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    code = response.json().get("error", {}).get("code", "") if response.status_code != 200 else ""
    return response.status_code, code


def _resigned(token: str, **claims: object) -> str:
    key = str(settings.SIMPLE_JWT["SIGNING_KEY"])
    payload = jwt.decode(token, key, algorithms=["HS256"])
    return jwt.encode({**payload, **claims}, key, algorithm="HS256")


def test_remembered_token_expires_on_time() -> None:
    now = [1_000.0]
    tokens = _VerifiedTokens(clock=lambda: now[0])
    token = AccessToken()
    token["exp"] = 1_010
    tokens.remember(b"raw", token)
    assert tokens.get(b"raw") is token
    now[0] = 1_009.9
    assert tokens.get(b"raw") is token
    now[0] = 1_010.0
    assert tokens.get(b"raw") is None
    assert tokens.get(b"other") is None


def test_a_token_used_before_is_refused_once_expired(alpha: TenantWorld) -> None:
    expires = int(time.time()) + 1
    token = _resigned(_access_token(alpha), exp=expires)
    assert _me(alpha, token) == (200, "")
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    assert _me(alpha, token) == (401, "token_not_valid")


def test_a_token_used_on_its_tenant_is_still_refused_on_another(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    token = _access_token(alpha)
    assert _me(alpha, token) == (200, "")
    assert _me(beta, token) == (401, "token_not_valid")
    assert _me(alpha, token) == (200, "")


def test_a_tampered_copy_of_a_remembered_token_is_refused(alpha: TenantWorld) -> None:
    client = login(alpha)
    assert client.get(ME_URL).status_code == 200
    token = _access_token(alpha)
    assert _me(alpha, token) == (200, "")
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    assert _me(alpha, tampered) == (401, "token_not_valid")
