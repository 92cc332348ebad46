"""/healthz and /readyz on any host, answered before tenant routing (no tenant lookup, no auth).

/healthz does no I/O: the process is up and serving. /readyz checks what a request needs:
PostgreSQL, Redis, and that the public schema and the tenant template have every migration; a
failing check answers 503 in the error envelope, naming it.

``HealthCheckMiddleware`` is the first entry of settings.MIDDLEWARE, ahead of the request log and
of the OpenTelemetry instrumentation (inserted after tenant routing), so kubelet probes by pod IP
never reach code that needs a known host, and probes leave no log line or span. It lives in
apikit, not observability, because it answers in the platform's error envelope and reads the
migration state: observability imports no platform app (pyproject.toml, import-linter).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse

from apikit.errors import error_body
from apikit.tenancy import activate_public

logger = logging.getLogger(__name__)

_migrations_ok = threading.Event()


def check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def check_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
    try:
        client.ping()
    finally:
        client.close()


def check_migrations() -> None:
    """Once every migration is applied it stays so for this process's code, so the (costly)
    graph comparison runs until the first success only."""
    if _migrations_ok.is_set():
        return
    from tenants.migration_state import schemas_behind

    behind = schemas_behind(["public"])
    if behind:
        raise RuntimeError("public schema has unapplied migrations: run migrate_schemas")
    _migrations_ok.set()


READINESS_CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "redis": check_redis,
    "migrations": check_migrations,
}


def run_readiness_checks() -> dict[str, str]:
    """{check name: "ok" | error description} for every check."""
    results: dict[str, str] = {}
    for name, check in READINESS_CHECKS.items():
        try:
            check()
        except Exception as exc:  # a failing dependency is reported, never raised
            logger.warning("readiness check %s failed: %s", name, exc)
            results[name] = f"failed: {type(exc).__name__}"
        else:
            results[name] = "ok"
    return results


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            return readiness_response()
        return self.get_response(request)


def readiness_response() -> JsonResponse:
    activate_public()
    checks = run_readiness_checks()
    failing = [name for name, result in checks.items() if result != "ok"]
    if failing:
        body = error_body(
            status=503,
            code="not_ready",
            detail=f"Not ready: {', '.join(failing)} check failed.",
        )
        body["checks"] = checks
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "checks": checks})
