"""Issue 21, item 10: no cross-tenant trust between hosts, checked over https with the values
settings/production.py really produces (read in a subprocess, then applied to the in-process
test client): a form posted to tenant A's admin with the ``Origin`` of tenant B's host is a 403
CSRF failure, the same form from A's own origin is accepted, and the session and CSRF cookies
are ``__Host-`` cookies (Secure, Path=/, no Domain) that no sibling host can plant.

The ingress is imitated the way it behaves in production: TLS ends there, so requests arrive
with ``X-Forwarded-Proto: https`` and the client's Host header unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from tests.security.admin_session import admin_session, csrf_token
from tests.security.conftest import SecurityWorld
from tests.security.world import ADMIN_EMAIL, Side

pytestmark = pytest.mark.security

ROOT = Path(__file__).resolve().parents[2]
# What settings/production.py decides about hosts, TLS, CSRF and cookies.
PRODUCTION_NAMES = (
    "CSRF_TRUSTED_ORIGINS",
    "SECURE_PROXY_SSL_HEADER",
    "SESSION_COOKIE_NAME",
    "CSRF_COOKIE_NAME",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SESSION_COOKIE_DOMAIN",
    "CSRF_COOKIE_DOMAIN",
    "SESSION_COOKIE_PATH",
    "CSRF_COOKIE_PATH",
    "SESSION_COOKIE_SAMESITE",
    "CSRF_COOKIE_SAMESITE",
)
STRONG_KEY = "k" * 10 + "Zq8#pW2!xR5@vN9$mL3^tB7&cF1*hJ4-csrf-test-key"
# The ingress: TLS ended, Host kept.
HTTPS: dict[str, Any] = {"HTTP_X_FORWARDED_PROTO": "https"}
LOGOUT = "/admin/logout/"


def _production_values() -> dict[str, Any]:
    """settings.production's values for BASE_DOMAIN=<the suite's>, with nothing inherited from
    the shell that could weaken them."""
    scrubbed = {"CSRF_TRUSTED_ORIGINS", "ALLOWED_HOSTS", "DEBUG", "SECRET_KEY_FALLBACKS"}
    env = {k: v for k, v in os.environ.items() if k not in scrubbed and not k.startswith("JWT_")}
    env.update(
        DJANGO_SETTINGS_MODULE="settings.production",
        SECRET_KEY=STRONG_KEY,
        BASE_DOMAIN=settings.BASE_DOMAIN,
    )
    code = (
        "import json, settings, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {list(PRODUCTION_NAMES)!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    values: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    header = values["SECURE_PROXY_SSL_HEADER"]
    values["SECURE_PROXY_SSL_HEADER"] = tuple(header) if header else None
    return values


@pytest.fixture(scope="module")
def production_values() -> dict[str, Any]:
    return _production_values()


@pytest.fixture
def production(production_values: dict[str, Any], sw: SecurityWorld) -> Iterator[dict[str, Any]]:
    with override_settings(**production_values):
        yield production_values


def origin(side: Side) -> str:
    return f"https://{side.host}"


def _signed_in_browser(side: Side) -> tuple[Client, str]:
    """A signed-in admin browser on ``side`` over https, and the CSRF token of its pages."""
    browser = admin_session(side)
    token = csrf_token(browser, "/admin/", **HTTPS)
    return browser, token


def _post_logout(browser: Client, token: str, **headers: str) -> Any:
    return browser.post(LOGOUT, {"csrfmiddlewaretoken": token}, **{**HTTPS, **headers})


def test_production_trusts_no_other_origin(production: dict[str, Any]) -> None:
    assert production["CSRF_TRUSTED_ORIGINS"] == []
    assert production["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")


def test_another_tenant_hosts_origin_is_refused_by_the_admin(
    sw: SecurityWorld, production: dict[str, Any]
) -> None:
    browser, token = _signed_in_browser(sw.a)
    # A script on B's host (an XSS there) posting A's admin form with the victim's cookies.
    refused = _post_logout(browser, token, HTTP_ORIGIN=origin(sw.b))
    assert refused.status_code == 403
    assert b"CSRF" in refused.content
    # Nothing happened: the session still works.
    assert browser.get("/admin/", **HTTPS).status_code == 200


@pytest.mark.parametrize(
    "foreign",
    [
        "https://verdant.test",  # the operators' host
        "http://sec-a.verdant.test",  # A's host over plain http
        "https://sec-a.verdant.test.evil.example",
        "https://evil-sec-a.verdant.test",
        "null",
    ],
)
def test_no_other_origin_is_trusted(
    sw: SecurityWorld, production: dict[str, Any], foreign: str
) -> None:
    browser, token = _signed_in_browser(sw.a)
    foreign = foreign.replace("verdant.test", settings.BASE_DOMAIN)
    assert _post_logout(browser, token, HTTP_ORIGIN=foreign).status_code == 403


def test_the_hosts_own_origin_is_accepted(sw: SecurityWorld, production: dict[str, Any]) -> None:
    browser, token = _signed_in_browser(sw.a)
    accepted = _post_logout(browser, token, HTTP_ORIGIN=origin(sw.a))
    assert accepted.status_code == 200, accepted.content[:300]
    assert browser.get("/admin/", **HTTPS).status_code == 302  # signed out


def test_the_own_origin_passes_only_because_the_proxy_says_https(
    sw: SecurityWorld, production: dict[str, Any]
) -> None:
    """Why SECURE_PROXY_SSL_HEADER matters: without X-Forwarded-Proto the request looks like
    http, its own origin would be http://..., and the browser's https Origin is refused."""
    browser, token = _signed_in_browser(sw.a)
    response = browser.post(
        LOGOUT,
        {"csrfmiddlewaretoken": token},
        HTTP_ORIGIN=origin(sw.a),
        HTTP_X_FORWARDED_PROTO="http",
    )
    assert response.status_code == 403


def test_admin_cookies_are_host_only_host_prefixed_and_secure(
    sw: SecurityWorld, production: dict[str, Any]
) -> None:
    browser = Client(HTTP_HOST=sw.a.host, enforce_csrf_checks=True)
    token = csrf_token(browser, "/admin/login/", **HTTPS)
    csrf = browser.cookies["__Host-csrftoken"]
    response = browser.post(
        "/admin/login/?next=/admin/",
        {"username": ADMIN_EMAIL, "password": sw.a.password, "csrfmiddlewaretoken": token},
        HTTP_ORIGIN=origin(sw.a),
        **HTTPS,
    )
    assert response.status_code == 302, response.content[:300]
    session = response.cookies["__Host-sessionid"]
    for cookie in (csrf, session):
        assert cookie["secure"] is True, cookie.key
        assert cookie["path"] == "/", cookie.key
        assert not cookie["domain"], cookie.key
    assert session["httponly"] is True
    assert "sessionid" not in response.cookies
    assert browser.get("/admin/", **HTTPS).status_code == 200


def test_cookies_planted_for_the_base_domain_are_never_read(
    sw: SecurityWorld, production: dict[str, Any]
) -> None:
    """A sibling host can set ``sessionid`` / ``csrftoken`` for the whole base domain, but not
    ``__Host-`` cookies: the planted names mean nothing here."""
    victim, _ = _signed_in_browser(sw.a)
    session_value = victim.cookies["__Host-sessionid"].value
    planted = Client(HTTP_HOST=sw.a.host, enforce_csrf_checks=True)
    planted.cookies["sessionid"] = session_value
    assert planted.get("/admin/", **HTTPS).status_code == 302  # not signed in
    # A CSRF cookie and token of the attacker's choosing do not pass either.
    victim.cookies["csrftoken"] = "A" * 32
    response = victim.post(
        LOGOUT, {"csrfmiddlewaretoken": "A" * 32}, HTTP_ORIGIN=origin(sw.a), **HTTPS
    )
    assert response.status_code == 403
