"""A real gunicorn serving the test database, for the suites that need a server in another
process (schema fuzzing, the browser). It reads the rows the suites COMMITTED (world.py), on its
own connections, with the same Redis, cache key prefix, secret key and media root as the tests.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

from tests.benchmarks.serving import deployed_gunicorn, free_port

__all__ = ["LiveServer", "free_port", "live_gunicorn", "test_database_url"]


def test_database_url() -> str:
    db = connection.settings_dict
    assert db["NAME"].startswith("test_"), "the live server only ever serves a test database"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass(frozen=True)
class LiveServer:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextlib.contextmanager
def live_gunicorn(*, workers: int = 2, name: str = "live") -> Iterator[LiveServer]:
    """gunicorn on a free loopback port; stopped (SIGTERM, then kill) when the block ends."""
    port = free_port()
    log = Path(tempfile.mkdtemp(prefix=f"verdant-{name}-")) / "gunicorn.log"
    env = os.environ.copy()
    env.update(
        DJANGO_SETTINGS_MODULE="tests.security.live_settings",
        DATABASE_URL=test_database_url(),
        REDIS_URL=settings.REDIS_URL,
        CACHE_KEY_PREFIX=str(settings.CACHES["default"]["KEY_PREFIX"]),
        SECRET_KEY=settings.SECRET_KEY,
        BASE_DOMAIN=settings.BASE_DOMAIN,
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        # Long fuzz runs outlast the default 15 minutes.
        JWT_ACCESS_MINUTES="240",
        GUNICORN_TIMEOUT="60",
        GUNICORN_WORKER_TMP_DIR=str(log.parent),
        GUNICORN_MAX_REQUESTS="0",
    )
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    # The production configuration (gthread workers, request-line and header limits), bound to
    # the loopback interface only, DEBUG off.
    with deployed_gunicorn(
        port=port, log=log, workers=workers, threads=2, env=env, start_seconds=60, stop_seconds=20
    ):
        yield LiveServer(port=port, log=log)
