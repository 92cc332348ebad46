"""Times one GET of /api/v1/auth/me/ through a whole WSGI application, in this process.

Run by bench_request_overhead.py once per configuration (the full Verdant stack, or the plain
project), so each is measured under its own settings. Prints one JSON line with the timings and,
for one request, the SQL statements and Redis commands it sent.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from typing import Any


def _environ(host: str, token: str | None) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/v1/auth/me/",
        "QUERY_STRING": "",
        "SERVER_NAME": host,
        "SERVER_PORT": "80",
        "HTTP_HOST": host,
        "REMOTE_ADDR": "127.0.0.1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    return environ


def _call(application: Any, host: str, token: str | None) -> int:
    status: list[str] = []

    def start_response(code: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        status.append(code)

    chunks = application(_environ(host, token), start_response)
    b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return int(status[0].split()[0])


def _count_io(application: Any, host: str, token: str | None) -> tuple[list[str], int]:
    import psycopg
    from django.conf import settings
    from redis.connection import Connection

    sent: list[Any] = []
    round_trips: list[str] = []
    original = Connection.send_packed_command
    original_cursor_execute = psycopg.Cursor.execute
    original_connection_execute = psycopg.Connection.execute

    def cursor_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        round_trips.append(str(query))
        return original_cursor_execute(self, query, *args, **kwargs)

    def connection_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        round_trips.append(str(query))  # Django's connection health check uses this
        return original_connection_execute(self, query, *args, **kwargs)

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command)
        original(self, command, check_health)

    Connection.send_packed_command = counting  # type: ignore[method-assign]
    psycopg.Cursor.execute = cursor_execute  # type: ignore[method-assign]
    psycopg.Connection.execute = connection_execute  # type: ignore[method-assign]
    try:
        plain_project = not settings.DATABASES["default"]["ENGINE"].endswith("postgresql_backend")
        if plain_project:
            _call(application, host, token)
            return [], len(sent)
        _call(application, host, token)
    finally:
        Connection.send_packed_command = original  # type: ignore[method-assign]
        psycopg.Cursor.execute = original_cursor_execute  # type: ignore[method-assign]
        psycopg.Connection.execute = original_connection_execute  # type: ignore[method-assign]
    return round_trips, len(sent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--token")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    args = parser.parse_args()

    import django

    import settings  # noqa: F401  (platform/ on sys.path; harmless for the plain project)

    django.setup()
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    for _ in range(args.warmup):
        assert _call(application, args.host, args.token) == 200
    timings = []
    for _ in range(args.requests):
        started = time.perf_counter()
        status = _call(application, args.host, args.token)
        timings.append(time.perf_counter() - started)
        assert status == 200, status
    statements, redis_commands = _count_io(application, args.host, args.token)
    timings.sort()
    sys.stdout.write(
        json.dumps(
            {
                "p50_ms": timings[len(timings) // 2] * 1000,
                "p95_ms": timings[int(len(timings) * 0.95)] * 1000,
                "mean_ms": statistics.fmean(timings) * 1000,
                "requests": len(timings),
                "statements": statements,
                "redis_commands": redis_commands,
            }
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
