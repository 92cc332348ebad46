"""Serving a benchmark over HTTP: a free loopback port, gunicorn started and stopped around the
measurement, and the WSGI application of a benchmark module that adds its own comparison routes."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.benchmarks.common import ROOT

START_SECONDS = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def gunicorn(
    *, app: str, port: int, log: Path, workers: int, threads: int = 1, timeout: int = 120
) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn serving ``app`` ("module:callable") on 127.0.0.1:``port`` with ``workers``
    processes of ``threads`` threads each (sync workers for one thread, gthread otherwise, as
    settings/gunicorn.conf.py chooses), DEBUG off and warnings-only logs into ``log``; stopped
    (SIGTERM) on the way out."""
    env = os.environ.copy()
    env.update(DJANGO_SETTINGS_MODULE="settings.dev", DEBUG="false", LOG_LEVEL="WARNING")
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        app,
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--worker-class",
        "gthread" if threads > 1 else "sync",
        "--threads",
        str(threads),
        "--timeout",
        str(timeout),
        "--log-level",
        "warning",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_SECONDS
            while time.monotonic() < deadline:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection(("127.0.0.1", port), 0.2),
                ):
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"gunicorn did not start; see {log}")
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def wsgi_application(urlconf: str) -> Any:
    """Django's WSGI application with ``urlconf`` as the root URLconf: a benchmark module that
    serves the real tenant routes plus its comparison endpoints."""
    import django
    from django.conf import settings as django_settings

    import settings as _bootstrap  # noqa: F401  (platform/ on sys.path)

    django.setup()
    django_settings.ROOT_URLCONF = urlconf
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def lazy_urlconf(module: str, urlpatterns: Callable[[], list[Any]]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for a benchmark module that is both the gunicorn application
    and its URLconf: ``urlpatterns`` and ``application`` are built on first use, after Django is
    set up (run.py imports the module before any settings exist); error handlers are the real
    tenant URLconf's."""
    built: dict[str, Any] = {}

    def module_getattr(name: str) -> Any:
        if name == "urlpatterns":
            if name not in built:
                built[name] = urlpatterns()
            return built[name]
        if name == "application":
            if name not in built:
                built[name] = wsgi_application(module)
            return built[name]
        if name in {"handler404", "handler500"}:
            from settings import urls as tenant_urls

            return getattr(tenant_urls, name)
        raise AttributeError(name)

    return module_getattr
