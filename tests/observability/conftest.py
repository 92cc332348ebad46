"""A traced stack for the end-to-end tests: an OTLP/HTTP receiver in this process, and a real
gunicorn web process and Celery worker, both started through the production entry points
(settings/wsgi.py, settings/celery_app.py) and exporting to the receiver.

The processes read the pytest database through DATABASE_URL, so they see committed data only:
the ``alpha`` and ``beta`` tenants seeded once per run (tests/conftest.py) are committed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.conf import settings
from django.db import connection

from tests.observability.otlp_receiver import Receiver, running_receiver

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0


@dataclass(frozen=True)
class TracedStack:
    receiver: Receiver
    base_url: str
    web_log: Path
    worker_log: Path

    def call(
        self, method: str, path: str, *, host: str, token: str = "", **kwargs: Any
    ) -> requests.Response:
        headers = {"Host": host, **kwargs.pop("headers", {})}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return requests.request(
            method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs
        )

    def login(self, *, host: str, email: str, password: str) -> str:
        response = self.call(
            "POST", "/api/v1/auth/token/", host=host, json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access"])

    def log_lines(self, path: Path) -> list[dict[str, Any]]:
        """The JSON log lines a process wrote so far (other output, e.g. gunicorn's, skipped)."""
        lines: list[dict[str, Any]] = []
        for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if raw.startswith("{"):
                lines.append(json.loads(raw))
        return lines


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_env(*, receiver: Receiver | None, queue: str, extra: dict[str, str]) -> dict[str, str]:
    """The environment of a web or worker process on this run's database, Redis and cache."""
    db = connection.settings_dict
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OTEL_") and key != "PYTEST_CURRENT_TEST"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.observability.settings_traced",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=str(settings.REDIS_URL),
        CACHE_KEY_PREFIX=str(settings.CACHES["default"]["KEY_PREFIX"]),
        VERDANT_TEST_QUEUE=queue,
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    if receiver is not None:
        env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            # Export within a fraction of a second, so tests do not wait for the 5 s default.
            OTEL_BSP_SCHEDULE_DELAY="100",
            DEPLOYMENT_ENVIRONMENT="test",
        )
    env.update(extra)
    return env


def _wait_until(check: Any, *, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{what} exited early:\n{log.read_text(errors='replace')}")
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} did not start in time:\n{log.read_text(errors='replace')}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _web_answers(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="module")
def traced_stack(
    django_db_setup: None,
    django_db_blocker: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TracedStack]:
    logs = tmp_path_factory.mktemp("traced-stack")
    queue = f"test-otel-{uuid.uuid4().hex[:8]}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    web_log, worker_log = logs / "web.log", logs / "worker.log"
    with running_receiver() as receiver, django_db_blocker.unblock():  # type: ignore[attr-defined]
        env = process_env(receiver=receiver, queue=queue, extra={})
        with web_log.open("wb") as web_out, worker_log.open("wb") as worker_out:
            web = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "settings.wsgi:application",
                    "--bind",
                    f"127.0.0.1:{port}",
                    "--workers",
                    "1",
                    "--timeout",
                    "60",
                ],
                cwd=ROOT,
                env=env,
                stdout=web_out,
                stderr=subprocess.STDOUT,
            )
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "settings.celery_app",
                    "worker",
                    "--pool",
                    "solo",
                    "-Q",
                    queue,
                    "-n",
                    f"{queue}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel",
                    "INFO",
                ],
                cwd=ROOT,
                env=env,
                stdout=worker_out,
                stderr=subprocess.STDOUT,
            )
            try:
                _wait_until(
                    lambda: _web_answers(base_url), what="gunicorn", process=web, log=web_log
                )
                _wait_until(
                    lambda: " ready." in worker_log.read_text(errors="replace"),
                    what="celery worker",
                    process=worker,
                    log=worker_log,
                )
                yield TracedStack(receiver, base_url, web_log, worker_log)
            finally:
                _stop(web)
                _stop(worker)
                client = redis.Redis.from_url(str(settings.REDIS_URL))
                try:
                    client.delete(queue)
                finally:
                    client.close()
