# ruff: noqa: N999 (gunicorn looks for *.conf.py; this file is loaded by path, never imported)
"""gunicorn settings for the web pods: `gunicorn -c settings/gunicorn.conf.py settings.wsgi:application`.

Everything comes from the environment (the Helm chart sets these from values):

    PORT (8000)                    GUNICORN_WORKERS (2)        GUNICORN_THREADS (4)
    GUNICORN_TIMEOUT (30)          GUNICORN_GRACEFUL_TIMEOUT (25)
    GUNICORN_KEEPALIVE (5)         GUNICORN_MAX_REQUESTS (2000)
    GUNICORN_ACCESS_LOG ("-": stdout; "" turns it off)    GUNICORN_LOG_LEVEL (info)

Sizing: each thread holds one database connection, so a pod opens up to workers x threads
connections; PgBouncer (session mode) or max_connections must cover replicas x workers x threads.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from datetime import UTC, datetime
from typing import Any

from gunicorn import glogging  # type: ignore[import-untyped]


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


# --- serving ------------------------------------------------------------------------------------
# A container listens on every interface of its own network namespace.
bind = f"0.0.0.0:{_int('PORT', 8000)}"
workers = _int("GUNICORN_WORKERS", 2)
threads = _int("GUNICORN_THREADS", 4)
# Threads share a process: django-tenants keeps the schema per connection and connections are per
# thread, so gthread is safe (WSGI only: the tenant must not hop between coroutines).
worker_class = "gthread" if threads > 1 else "sync"
timeout = _int("GUNICORN_TIMEOUT", 30)
# On SIGTERM workers finish in-flight requests for this long; keep it under the pod's
# terminationGracePeriodSeconds minus the preStop sleep.
graceful_timeout = _int("GUNICORN_GRACEFUL_TIMEOUT", 25)
keepalive = _int("GUNICORN_KEEPALIVE", 5)
# Recycle workers now and then so a slow leak never becomes an OOM kill; jitter avoids every
# worker restarting at once.
max_requests = _int("GUNICORN_MAX_REQUESTS", 2000)
max_requests_jitter = max(1, max_requests // 10) if max_requests else 0
# The root filesystem is read-only: worker heartbeat files go to a tmpfs.
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", "/dev/shm")  # noqa: S108 (heartbeats only)
# Not preloaded: each worker imports the app after fork, so database connections, Redis pools
# and the OpenTelemetry exporter threads are never shared across processes.
preload_app = False
# Bound request lines and headers (DoS guard); bodies are limited by the app.
limit_request_line = 8190
limit_request_fields = 100
proxy_protocol = False

# --- logging ------------------------------------------------------------------------------------
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
errorlog = "-"
# Health probes arrive every few seconds from the kubelet: logged only when they fail.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})


class JsonLogger(glogging.Logger):
    """One JSON object per line for gunicorn's own messages and for the access log.

    The access line carries the path without its query string: query strings hold search terms
    (patient names) and must never reach a log.
    """

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.setFormatter(logging.Formatter("%(message)s"))

    def _emit(self, log: logging.Logger, level: int, fields: dict[str, Any]) -> None:
        line = {
            "timestamp": datetime.now(UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": logging.getLevelName(level),
            **fields,
        }
        log.log(level, "%s", json.dumps(line, default=str))

    def log(self, lvl: Any, msg: Any, *args: Any, **kwargs: Any) -> None:
        level = lvl if isinstance(lvl, int) else self.LOG_LEVELS.get(str(lvl).lower(), logging.INFO)
        if not self.error_log.isEnabledFor(level):
            return
        message = str(msg) % args if args else str(msg)
        fields: dict[str, Any] = {
            "logger": "gunicorn.error",
            "message": message,
            "pid": os.getpid(),
        }
        if kwargs.get("exc_info"):
            # Inside the JSON object: a multi-line traceback would break one-object-per-line.
            fields["exception"] = traceback.format_exc()
        self._emit(self.error_log, level, fields)

    def critical(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.CRITICAL, msg, *args, **kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.INFO, msg, *args, **kwargs)

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kwargs)

    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None:
        self.log(logging.ERROR, msg, *args, exc_info=True, **kwargs)

    def access(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> None:
        if not self.access_log_enabled:
            return
        status = int(str(resp.status).split()[0]) if resp.status else 0
        path = environ.get("PATH_INFO", "")
        if path in QUIET_PATHS and status < 400:
            return
        headers = {name.lower(): value for name, value in (resp.headers or [])}
        self._emit(
            self.access_log,
            logging.INFO,
            {
                "logger": "gunicorn.access",
                "message": f"{environ.get('REQUEST_METHOD', '')} {path} {status}",
                "method": environ.get("REQUEST_METHOD", ""),
                "path": path,
                "status": status,
                "duration_ms": round(request_time.total_seconds() * 1000, 2),
                "response_bytes": getattr(resp, "sent", None),
                "host": environ.get("HTTP_HOST", ""),
                "remote_addr": environ.get("REMOTE_ADDR", ""),
                "forwarded_for": environ.get("HTTP_X_FORWARDED_FOR", ""),
                "user_agent": environ.get("HTTP_USER_AGENT", ""),
                "request_id": headers.get("x-request-id", ""),
                "protocol": environ.get("SERVER_PROTOCOL", ""),
            },
        )


logger_class = JsonLogger
