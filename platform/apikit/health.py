"""Liveness and readiness checks.

/healthz does no I/O: the process is up and serving. /readyz checks what a request needs:
PostgreSQL, Redis, and that the public schema and the tenant template have every migration.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection

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
