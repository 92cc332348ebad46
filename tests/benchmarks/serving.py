"""Serving a benchmark over HTTP: a free loopback port, gunicorn started and stopped around the
measurement (a plain one, or one with the production configuration, which the live-server test
suites start too: tests/security/live.py), a Celery worker likewise, and the WSGI application of
a benchmark module that adds its own comparison routes."""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
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
    with served(command, env=env, log=log, ready=lambda: port_accepts(port), what="gunicorn") as p:
        yield p


@contextlib.contextmanager
def deployed_gunicorn(
    *,
    port: int,
    log: Path,
    workers: int,
    threads: int,
    env: Mapping[str, str],
    start_seconds: float = START_SECONDS,
    stop_seconds: float = 30,
) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn with the production configuration (settings/gunicorn.conf.py: gthread workers,
    request-line and header limits) serving settings.wsgi on 127.0.0.1:``port`` only, with
    ``workers`` x ``threads``, DEBUG off, warnings-only logs into ``log`` and no access log, on top
    of ``env`` (the caller's DJANGO_SETTINGS_MODULE, DATABASE_URL, GUNICORN_* ...); yielded once
    /healthz answers 200, stopped on the way out."""
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        "settings/gunicorn.conf.py",
        "--bind",
        f"127.0.0.1:{port}",
        "settings.wsgi:application",
    ]
    full_env = {
        **env,
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "GUNICORN_WORKERS": str(workers),
        "GUNICORN_THREADS": str(threads),
        "GUNICORN_ACCESS_LOG": "",
        "GUNICORN_LOG_LEVEL": "warning",
    }
    with served(
        command,
        env=full_env,
        log=log,
        ready=lambda: healthy(port),
        what="gunicorn",
        start_seconds=start_seconds,
        stop_seconds=stop_seconds,
    ) as process:
        yield process


@contextlib.contextmanager
def celery_worker(
    *,
    queue: str,
    log: Path,
    env: Mapping[str, str],
    pool: str,
    concurrency: int | None = None,
    start_seconds: float = 60,
) -> Iterator[subprocess.Popen[bytes]]:
    """A Celery worker of settings.celery_app consuming ``queue`` only (and named after it),
    without gossip, mingle or heartbeat, INFO logs into ``log``, with ``env``; yielded once it
    logs that it is ready, stopped on the way out."""
    command = [
        sys.executable, "-m", "celery", "-A", "settings.celery_app", "worker",
        "--pool", pool, *(["--concurrency", str(concurrency)] if concurrency else []),
        "-Q", queue, "-n", f"{queue}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO",
    ]  # fmt: skip
    with served(
        command,
        env=env,
        log=log,
        ready=lambda: " ready." in log.read_text(errors="replace"),
        what="worker",
        start_seconds=start_seconds,
    ) as process:
        yield process


@contextlib.contextmanager
def served(
    command: list[str],
    *,
    env: Mapping[str, str],
    log: Path,
    ready: Callable[[], bool],
    what: str,
    start_seconds: float = START_SECONDS,
    stop_seconds: float = 30,
) -> Iterator[subprocess.Popen[bytes]]:
    """``command`` run from the repository root with its output into ``log``, yielded once
    ``ready()`` holds, stopped (``stop``) on the way out."""
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_until(ready, process=process, what=what, log=log, seconds=start_seconds)
            yield process
        finally:
            stop(process, timeout=stop_seconds)


def wait_until(
    ready: Callable[[], bool],
    *,
    process: subprocess.Popen[bytes],
    what: str,
    log: Path | None,
    seconds: float = START_SECONDS,
) -> None:
    """Poll ``ready()`` every 0.2 s; RuntimeError (with the log) when ``process`` exits first or
    ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            shown = f"; log: {log}\n{log.read_text(errors='replace')}" if log else ""
            raise RuntimeError(f"{what} did not start{shown}")
        time.sleep(0.2)


def port_accepts(port: int) -> bool:
    """Whether 127.0.0.1:``port`` accepts a TCP connection."""
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


def healthy(port: int) -> bool:
    """Whether GET /healthz on 127.0.0.1:``port`` answers 200 (any host: settings/base.py)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", "/healthz", headers={"Host": "localhost"})
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def stop(process: subprocess.Popen[bytes], *, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if the process outlives ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


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
