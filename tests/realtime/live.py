"""A real uvicorn serving settings.asgi on the test database, as a client meets it in production:
its own process, its own LISTEN connection, the websockets protocol, per-message deflate off."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings

from settings.devstack import realtime_server_command
from tests.security.live import free_port, test_database_url

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class LiveASGI:
    port: int
    log: Path

    def socket(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)


@contextlib.contextmanager
def live_uvicorn(*, name: str = "realtime") -> Iterator[LiveASGI]:
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix=f"verdant-{name}-")) / "uvicorn.log"
    env = os.environ.copy()
    env.update(
        DJANGO_SETTINGS_MODULE="tests.realtime.live_settings",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        CACHE_KEY_PREFIX=str(settings.CACHES["default"]["KEY_PREFIX"]),
        SECRET_KEY=settings.SECRET_KEY,
        BASE_DOMAIN=settings.BASE_DOMAIN,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        DEBUG="false",
        LOG_LEVEL="WARNING",
    )
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    command = realtime_server_command(port=port, extra=["--log-level", "warning"])
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            server = LiveASGI(port=port, log=log)
            deadline = time.monotonic() + 60
            while True:
                try:
                    url = f"http://127.0.0.1:{port}/healthz"
                    if requests.get(url, timeout=5).status_code == 200:
                        break
                except requests.RequestException:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn did not start; log: {log}\n{log.read_text()}")
                time.sleep(0.2)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
