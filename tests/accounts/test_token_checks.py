"""simplejwt verifies every access token on every request (issue 22 item 3 removed the
per-process memory of verified tokens): a token accepted once is still refused once expired, on
another tenant's host, or altered."""

import time

import jwt
from django.conf import settings

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


def test_a_tampered_copy_of_an_accepted_token_is_refused(alpha: TenantWorld) -> None:
    client = login(alpha)
    assert client.get(ME_URL).status_code == 200
    token = _access_token(alpha)
    assert _me(alpha, token) == (200, "")
    header, payload, signature = token.split(".")
    tampered = f"{header}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    assert _me(alpha, tampered) == (401, "token_not_valid")
