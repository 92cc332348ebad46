"""Two real gunicorn workers share the same Redis buckets.

gunicorn sees only committed data, so the tenant is provisioned (and dropped afterwards) outside
the per-test transaction, on its own plan with tiny tenant-wide limits.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import pytest
import redis
from django.conf import settings
from django.db import connection

from apikit.tenancy import activate_public
from tenants.models import Plan, Tenant
from tenants.services import tenant_drop, tenant_host, tenant_provision

ROOT = Path(__file__).resolve().parents[2]
SLUG = "throttled"
PLAN_NAME = "throttle-two-workers"
# Anonymous requests per minute of the whole tenant (its anon-tenant bucket, a share of the plan's
# ceiling): one per 12 s after the burst, far longer than the test.
LIMIT = 5
EXTRA = 7
TOKEN_PATH = "/api/v1/auth/token/"
# "<pid> <status> <path>": the path tells the warm-up health checks from the measured requests.
ACCESS_FORMAT = "%(p)s %(s)s %(U)s"
ACCESS_LINE = re.compile(r"^<(\d+)> (\d{3}) (\S+)$")


def _clear_throttle_keys() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        prefix = settings.CACHES["default"]["KEY_PREFIX"]
        keys = list(client.scan_iter(match=f"{prefix}:throttle:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _drop_tenant_and_plan() -> None:
    if Tenant.objects.filter(slug=SLUG).exists():
        tenant_drop(slug=SLUG)
    Plan.objects.filter(name=PLAN_NAME).delete()
    activate_public()


@pytest.fixture(scope="module")
def throttled_host(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[str]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        _drop_tenant_and_plan()  # leftovers of an interrupted run with --reuse-db
        Plan.objects.create(
            name=PLAN_NAME, requests_per_minute=LIMIT * 100 // settings.ANON_TENANT_SHARE_PERCENT
        )
        tenant_provision(
            slug=SLUG,
            name="Throttled Org",
            kind=Tenant.Kind.CLINIC,
            admin_email="admin@example.com",
            plan_name=PLAN_NAME,
        )
        activate_public()
    try:
        yield tenant_host(SLUG)
    finally:
        with django_db_blocker.unblock():  # type: ignore[attr-defined]
            _drop_tenant_and_plan()
        _clear_throttle_keys()


def _database_url() -> str:
    db = connection.settings_dict
    credentials = quote(str(db["USER"]), safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(str(db["PASSWORD"]), safe="")
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{credentials}@{host}:{port}/{db['NAME']}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _request(*, port: int, host: str, method: str, path: str, body: bytes = b"") -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Host": host, "Connection": "close", "Content-Type": "application/json"}
        conn.request(method, path, body=body or None, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def _access_log(log: Path, *, path: str | None = None) -> list[tuple[str, int]]:
    """(worker pid, status) per logged request, optionally only those for ``path``."""
    lines = log.read_text().splitlines() if log.exists() else []
    matches = [match for line in lines if (match := ACCESS_LINE.match(line.strip()))]
    return [(m[1], int(m[2])) for m in matches if path is None or m[3] == path]


@pytest.fixture
def gunicorn(throttled_host: str, tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """Two sync workers on a free port, against the test database and this run's Redis prefix;
    yields once both workers have answered a request."""
    port = _free_port()
    access_log = tmp_path / "access.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": str(settings.CACHES["default"]["KEY_PREFIX"]),
        "SECRET_KEY": settings.SECRET_KEY,
    }
    command = [
        str(Path(sys.executable).with_name("gunicorn")),
        "settings.wsgi:application",
        "--workers",
        "2",
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        str(access_log),
        "--access-logformat",
        ACCESS_FORMAT,
        "--error-logfile",
        str(tmp_path / "error.log"),
    ]
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 15
        while len({pid for pid, _ in _access_log(access_log)}) < 2:
            assert process.poll() is None, (tmp_path / "error.log").read_text()
            assert time.monotonic() < deadline, "both gunicorn workers did not come up in 15 s"
            try:
                _request(port=port, host=throttled_host, method="GET", path="/healthz")
            except OSError:
                time.sleep(0.1)
        yield port, access_log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_two_gunicorn_workers_share_the_tenant_wide_bucket(
    throttled_host: str, gunicorn: tuple[int, Path]
) -> None:
    port, access_log = gunicorn

    def attempt(number: int) -> int:
        body = json.dumps({"email": f"nobody{number}@example.com", "password": "wrong"})
        return _request(
            port=port,
            host=throttled_host,
            method="POST",
            path=TOKEN_PATH,
            body=body.encode(),
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        answered = list(pool.map(attempt, range(LIMIT + EXTRA)))

    # Bad credentials are 401s and still count; every other request hits the shared bucket.
    assert sorted(answered) == [401] * LIMIT + [429] * EXTRA
    deadline = time.monotonic() + 5
    while len(served := _access_log(access_log, path=TOKEN_PATH)) < LIMIT + EXTRA:
        assert time.monotonic() < deadline, "gunicorn did not log every request"
        time.sleep(0.05)
    assert len({pid for pid, _ in served}) == 2, f"one worker served everything: {served}"
    assert sorted(status for _, status in served) == sorted(answered)
