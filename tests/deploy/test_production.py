"""Production settings refuse insecure configuration, and gunicorn serves them for real: JSON
access log without query strings, security headers behind the TLS-terminating ingress, health
probes over plain HTTP, graceful shutdown on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "p" * 10 + "Zq8#pW2!xR5@vN9$mL3^tB7&cF1*hJ4-production-key"
OTHER_STRONG_KEY = "o" * 10 + "Yx7!aB3$kL9^dQ2&fG5*wE8#rT1@old-production-key"
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "settings.production",
    "SECRET_KEY": STRONG_KEY,
    "BASE_DOMAIN": "verdant.test",
}
# Settings the tests never inherit from the developer's or CI's shell.
SCRUBBED = {"SECRET_KEY", "SECRET_KEY_FALLBACKS", "JWT_SIGNING_KEY", "DEBUG", "ALLOWED_HOSTS"}
SCRUBBED |= {"CSRF_TRUSTED_ORIGINS", "TRUSTED_PROXY_COUNT", "BASE_DOMAIN"}


def _env(**overrides: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    return {**base, **PRODUCTION_ENV, **overrides}


def _python(code: str, **overrides: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(**overrides),
    )


def _settings(*names: str, **overrides: str) -> dict[str, Any]:
    code = (
        "import json, settings, django; django.setup(); from django.conf import settings as s; "
        f"print(json.dumps({{n: getattr(s, n) for n in {list(names)!r}}}, default=list))"
    )
    result = _python(code, **overrides)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ALLOWED_HOSTS": "verdant.test,*"}, "ALLOWED_HOSTS must not contain '*'"),
        ({"CSRF_TRUSTED_ORIGINS": "http://verdant.test"}, "must be https:// origins"),
        ({"CSRF_TRUSTED_ORIGINS": "https://*.verdant.test"}, "must not contain '*'"),
        (
            {"CSRF_TRUSTED_ORIGINS": "https://verdant.test,https://acme*.verdant.test"},
            "must not contain '*'",
        ),
        ({"JWT_SIGNING_KEY": "short-jwt-key"}, "JWT_SIGNING_KEY is too weak"),
        ({"SECRET_KEY_FALLBACKS": f"{OTHER_STRONG_KEY},weak"}, "SECRET_KEY_FALLBACKS holds a weak"),
        ({"SECRET_KEY": "a" * 60}, "SECRET_KEY is too weak"),
        ({"SECRET_KEY": "django-insecure-" + STRONG_KEY}, "SECRET_KEY is too weak"),
        ({"TRUSTED_PROXY_COUNT": "-1"}, "TRUSTED_PROXY_COUNT must be 0 or more"),
        ({"TRUSTED_PROXY_COUNT": "one"}, "is not an integer"),
    ],
    ids=[
        "any-host",
        "http-origin",
        "wildcard-origin",
        "partial-wildcard-origin",
        "weak-jwt",
        "weak-fallback",
        "one-char-key",
        "insecure-prefix",
        "negative-proxies",
        "bad-proxies",
    ],
)
def test_production_refuses_insecure_configuration(overrides: dict[str, str], message: str) -> None:
    result = _python("import settings, django; django.setup()", **overrides)
    assert result.returncode != 0
    assert message in result.stderr


def test_security_settings_follow_the_environment() -> None:
    loaded = _settings(
        "DEBUG",
        "ALLOWED_HOSTS",
        "CSRF_TRUSTED_ORIGINS",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SESSION_COOKIE_SECURE",
        "CSRF_COOKIE_SECURE",
        "SECURE_SSL_REDIRECT",
        "SECURE_PROXY_SSL_HEADER",
        "SESSION_COOKIE_NAME",
        "CSRF_COOKIE_NAME",
        "SESSION_COOKIE_DOMAIN",
        "CSRF_COOKIE_DOMAIN",
        "SESSION_COOKIE_PATH",
        "CSRF_COOKIE_PATH",
        "SECRET_KEY_FALLBACKS",
        "TRUSTED_PROXY_COUNT",
        "MIDDLEWARE",
        "STORAGES",
        SECRET_KEY_FALLBACKS=OTHER_STRONG_KEY,
        TRUSTED_PROXY_COUNT="2",
    )
    assert loaded["DEBUG"] is False
    # Tenant hosts: the base domain and every subdomain. No origin is trusted besides each
    # request's own host (issue 21: no cross-tenant trust between hosts).
    assert loaded["ALLOWED_HOSTS"] == ["verdant.test", ".verdant.test"]
    assert loaded["CSRF_TRUSTED_ORIGINS"] == []
    assert loaded["SECURE_HSTS_SECONDS"] >= 31536000
    assert loaded["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert loaded["SESSION_COOKIE_SECURE"] is True
    assert loaded["CSRF_COOKIE_SECURE"] is True
    assert loaded["SECURE_SSL_REDIRECT"] is True
    assert loaded["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    # __Host- cookies: Secure, Path=/, no Domain (no sibling tenant host can set them).
    assert loaded["SESSION_COOKIE_NAME"] == "__Host-sessionid"
    assert loaded["CSRF_COOKIE_NAME"] == "__Host-csrftoken"
    assert loaded["SESSION_COOKIE_DOMAIN"] is None
    assert loaded["CSRF_COOKIE_DOMAIN"] is None
    assert loaded["SESSION_COOKIE_PATH"] == loaded["CSRF_COOKIE_PATH"] == "/"
    assert loaded["SECRET_KEY_FALLBACKS"] == [OTHER_STRONG_KEY]
    assert loaded["TRUSTED_PROXY_COUNT"] == 2
    assert "whitenoise.middleware.WhiteNoiseMiddleware" in loaded["MIDDLEWARE"]
    assert (
        loaded["STORAGES"]["staticfiles"]["BACKEND"]
        == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    )


def test_check_deploy_security_is_clean_with_a_full_environment() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "check",
            "--deploy",
            "--tag",
            "security",
            "--fail-level",
            "WARNING",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=_env(
            JWT_SIGNING_KEY=OTHER_STRONG_KEY,
            ALLOWED_HOSTS="verdant.test,.verdant.test",
            CSRF_TRUSTED_ORIGINS="https://verdant.test",
            TRUSTED_PROXY_COUNT="1",
        ),
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


# --- gunicorn, for real ----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db
def test_gunicorn_serves_production_settings(tmp_path: Path) -> None:
    """The server reads the test database (alpha is committed there) on its own connections."""
    assert connection.settings_dict["NAME"].startswith("test_")
    port = _free_port()
    stdout_path, stderr_path = tmp_path / "stdout.log", tmp_path / "stderr.log"
    env = _env(
        DATABASE_URL=_database_url(),
        PORT=str(port),
        GUNICORN_WORKERS="1",
        GUNICORN_THREADS="2",
        GUNICORN_GRACEFUL_TIMEOUT="10",
        GUNICORN_WORKER_TMP_DIR=str(tmp_path),
        TRUSTED_PROXY_COUNT="1",
    )
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    with stdout_path.open("w") as out, stderr_path.open("w") as err:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "-c",
                "settings/gunicorn.conf.py",
                "settings.wsgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=err,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                try:
                    health = requests.get(f"{base}/healthz", timeout=2)
                    break
                # Refused before the bind, or accepted by the master while the worker still boots
                # (on a loaded machine that outlasts a short read timeout).
                except (requests.ConnectionError, requests.Timeout):
                    assert server.poll() is None, stderr_path.read_text()
                    assert time.monotonic() < deadline, stderr_path.read_text()
                    time.sleep(0.2)
            # Probes come over plain HTTP from the kubelet: never redirected.
            assert health.status_code == 200
            ready = requests.get(f"{base}/readyz", timeout=5)
            assert ready.status_code == 200, ready.text

            tenant = {"Host": "alpha.verdant.test"}
            plain = requests.get(
                f"{base}/api/v1/users/", headers=tenant, timeout=5, allow_redirects=False
            )
            assert plain.status_code == 301
            assert plain.headers["Location"] == "https://alpha.verdant.test/api/v1/users/"

            secure = requests.get(
                f"{base}/api/v1/users/?search=Jane+Secretname",
                headers={**tenant, "X-Forwarded-Proto": "https", "X-Request-ID": "req-deploy-1"},
                timeout=5,
            )
            assert secure.status_code == 401
            assert secure.json()["error"]["status"] == 401
            assert "includeSubDomains" in secure.headers["Strict-Transport-Security"]
            assert secure.headers["X-Content-Type-Options"] == "nosniff"
            assert secure.headers["X-Frame-Options"] == "DENY"
        finally:
            started_stopping = time.monotonic()
            server.send_signal(signal.SIGTERM)
            code = server.wait(timeout=30)
    # Graceful: a clean exit, well within the pod's grace period.
    assert code == 0, stderr_path.read_text()
    assert time.monotonic() - started_stopping < 15

    access = [json.loads(line) for line in stdout_path.read_text().splitlines() if line.strip()]
    assert [(line["method"], line["path"], line["status"]) for line in access] == [
        ("GET", "/api/v1/users/", 301),
        ("GET", "/api/v1/users/", 401),
    ]
    assert access[1]["host"] == "alpha.verdant.test"
    assert access[1]["logger"] == "gunicorn.access"
    assert isinstance(access[1]["duration_ms"], float)
    # The access log never carries query strings (search terms hold patient names).
    assert "Secretname" not in stdout_path.read_text()
    gunicorn_lines = [
        json.loads(line)
        for line in stderr_path.read_text().splitlines()
        if '"gunicorn.error"' in line
    ]
    assert any("Booting worker" in line["message"] for line in gunicorn_lines)
