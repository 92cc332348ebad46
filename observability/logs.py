"""JSON log lines with trace, tenant and request context, and redaction of secrets and PHI.

Every line (settings LOGGING) is one JSON object::

    {"timestamp": "...Z", "level": "INFO", "logger": "verdant.request", "message": "...",
     "trace_id": "...", "span_id": "...", "tenant": "t_alpha", "request_id": "...", ...}

``LogContextFilter`` adds the context fields from what the current request or Celery task set
(``bind_request`` / ``bind_task``) and from the current span. ``RedactingFilter`` rewrites the
message, its arguments and exception text so that Authorization headers, bearer tokens, JWTs,
passwords and other secrets, and phone-number-like values never reach a log line. Names cannot
be recognised by a pattern: they stay out of logs because nothing logs bodies or query strings
(the request line carries the route template, not the path).
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from observability.tracing import current_span_ids, record_exception

REQUEST_LOGGER = "verdant.request"
REDACTED = "[REDACTED]"

# What the current request or task is; read lazily at log time (the request id and tenant are
# set by middleware further in, after the request was bound).
_bound_request: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "verdant_log_request", default=None
)
_bound_task: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "verdant_log_task", default=None
)

# Names of fields whose values are secrets (a pattern of key names, not a credential).
_SECRET_KEYS = (
    r"password|passwd|pwd|new_password|old_password|secret|client_secret|token|access_token|"  # noqa: S105
    r"refresh_token|api[_-]?key|signing[_-]?key|session[_-]?id|csrftoken|cookie"
)
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization / Proxy-Authorization headers in any rendering (HTTP, WSGI META, dict repr).
    (
        re.compile(
            r"((?:proxy[_-])?(?:http_)?authorization['\"]?\s*[:=]\s*['\"]?)"
            r"(?:[A-Za-z]+\s+)?[^'\"\s,;}]+",
            re.IGNORECASE,
        ),
        rf"\1{REDACTED}",
    ),
    (
        re.compile(r"\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE),
        rf"\1 {REDACTED}",
    ),
    # JWTs anywhere (three base64url segments, the first a JSON header).
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # key=value, key: value, "key": "value" for secret-looking keys.
    (
        re.compile(
            rf"(\b(?:{_SECRET_KEYS})\b['\"]?\s*[:=]\s*)(['\"]?)[^'\"\s,&;}}]*\2",
            re.IGNORECASE,
        ),
        rf"\1\2{REDACTED}\2",
    ),
)
# Phone-like: 7 to 15 digits with the usual separators, optionally with a leading +.
_PHONE_CANDIDATE = re.compile(r"(?<![\w./:-])\+?\(?\d[\d ().-]{5,20}\d(?![\w/:-])")
_NOT_A_PHONE = (
    re.compile(r"\d{4}-\d{2}-\d{2}.*"),  # dates, timestamps
    re.compile(r"\d{1,3}(?:\.\d{1,3}){3}"),  # IPv4 addresses
    re.compile(r"\d+\.\d+"),  # decimal numbers (durations)
)
REDACTED_PHONE = "[REDACTED-PHONE]"


def redact(text: str) -> str:
    """``text`` with secrets and phone-like values replaced."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return _PHONE_CANDIDATE.sub(_redact_phone, text)


def _redact_phone(match: re.Match[str]) -> str:
    candidate = match.group(0)
    digits = sum(character.isdigit() for character in candidate)
    if not 7 <= digits <= 15:
        return candidate
    if any(pattern.fullmatch(candidate) for pattern in _NOT_A_PHONE):
        return candidate
    return REDACTED_PHONE


class RedactingFilter(logging.Filter):
    """Renders the message with its arguments, then redacts it and the exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) or record.args:
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                message = str(record.msg)
            record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


class LogContextFilter(logging.Filter):
    """Adds trace_id, span_id, tenant and request_id (and task_id in Celery) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        trace_id, span_id = current_span_ids()
        tenant, request_id, task_id = "", "", ""
        request = _bound_request.get()
        if request is not None:
            tenant_object = getattr(request, "tenant", None)
            tenant = str(getattr(tenant_object, "schema_name", "") or "")
            request_id = str(getattr(request, "request_id", "") or "")
            if not trace_id:
                # After the request span ended (the request line): the ids it left behind.
                trace_id, span_id = getattr(request, "trace_ids", ("", ""))
        record.trace_id, record.span_id = trace_id, span_id
        task = _bound_task.get()
        if task is not None:
            tenant, task_id = task
        record.tenant, record.request_id = tenant, request_id
        if task_id:
            record.task_id = task_id
        return True


class SpanErrorFilter(logging.Filter):
    """Records a logged exception (ERROR and above) on the current span, so the trace of a
    failed request or task shows what failed. Django's own request logger is skipped: the
    tracing middleware already records exceptions that reach Django."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and record.exc_info and record.name != "django.request":
            error = record.exc_info[1]
            if error is not None:
                record_exception(error)
        return True


class VerdantJsonFormatter(JsonFormatter):
    """One JSON object per line: timestamp (UTC, ISO 8601 with Z), level, logger, message, the
    context fields, then any ``extra=`` the call passed; exception text is redacted."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault(
            # "request": Django's request logger passes the WSGIRequest, whose repr holds the full
            # path with its query string (search terms, names, phone numbers): never emit it.
            "reserved_attrs",
            [*RESERVED_ATTRS, "trace_id", "span_id", "tenant", "request_id", "request"],
        )
        super().__init__(*args, **kwargs)

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = (
            datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
        ).replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.getMessage()
        log_data["trace_id"] = getattr(record, "trace_id", "")
        log_data["span_id"] = getattr(record, "span_id", "")
        log_data["tenant"] = getattr(record, "tenant", "")
        log_data["request_id"] = getattr(record, "request_id", "")
        super().add_fields(log_data, record, message_dict)

    def formatException(self, ei: Any) -> str:  # noqa: N802
        return redact(str(super().formatException(ei)))


@contextmanager
def bind_request(request: Any) -> Iterator[None]:
    """Log lines emitted while the block runs carry this request's tenant and request id."""
    token = _bound_request.set(request)
    try:
        yield
    finally:
        _bound_request.reset(token)


def bind_task(*, tenant: str, task_id: str) -> contextvars.Token[tuple[str, str] | None]:
    """Celery ``task_prerun``: log lines of the task carry its tenant and task id."""
    return _bound_task.set((tenant, task_id))


def unbind_task() -> None:
    """Celery ``task_postrun``."""
    _bound_task.set(None)
