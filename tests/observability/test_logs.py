"""JSON log lines with context, and redaction: no secrets or PHI reach the logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from observability import tracing
from observability.logs import (
    REDACTED,
    REDACTED_PHONE,
    LogContextFilter,
    RedactingFilter,
    VerdantJsonFormatter,
    bind_request,
    bind_task,
    redact,
    unbind_task,
)
from tests.conftest import ADMIN_EMAIL, TenantWorld, login

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ1c2VyX2lkIjoiMSIsInRpZCI6InRfYWxwaGEifQ."
    "c2lnbmF0dXJlLW5vdC1yZWFs"
)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
        ("{'HTTP_AUTHORIZATION': 'Bearer abcdefgh12345678'}", "abcdefgh12345678"),
        ("authorization=Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
        (f"token issued {JWT}", JWT),
        ('{"email": "a@b.c", "password": "hunter2-Secret"}', "hunter2-Secret"),
        ("password=hunter2-Secret&email=a", "hunter2-Secret"),
        ("refresh_token: r3fr3sh-v4lue", "r3fr3sh-v4lue"),
        ("api_key='k-123456789'", "k-123456789"),
        ("client_secret=abc.def", "abc.def"),
    ],
)
def test_secrets_are_redacted(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    "phone", ["+15551234567", "+44 20 7946 0958", "(555) 123-4567", "555-123-4567", "0612345678"]
)
def test_phone_like_values_are_redacted(phone: str) -> None:
    assert redact(f"patient phone {phone} saved") == f"patient phone {REDACTED_PHONE} saved"


@pytest.mark.parametrize(
    "text",
    [
        "user 01900000-0000-7000-8000-000000000001 logged in",
        "at 2026-11-23 04:11:00 from 127.0.0.1",
        "took 1234.56 ms for 42 rows",
        "GET /api/<str:version>/users/ 200",
        "purged 1234567890123456789 records",  # too many digits for a phone number
    ],
)
def test_ordinary_values_are_left_alone(text: str) -> None:
    assert redact(text) == text


def _render(record: logging.LogRecord) -> dict[str, Any]:
    for log_filter in (LogContextFilter(), RedactingFilter()):
        log_filter.filter(record)
    return dict(json.loads(VerdantJsonFormatter().format(record)))


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("verdant.test", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


class _FakeTenant:
    schema_name = "t_alpha"


class _FakeRequest:
    tenant = _FakeTenant()
    request_id = "req-0001-abcd"


def test_json_line_has_the_context_fields() -> None:
    with bind_request(_FakeRequest()):
        line = _render(_record("hello %s", "world", route="/api/x/"))
    assert line["message"] == "hello world"
    assert line["level"] == "WARNING"
    assert line["logger"] == "verdant.test"
    assert line["timestamp"].endswith("Z")
    assert line["tenant"] == "t_alpha"
    assert line["request_id"] == "req-0001-abcd"
    assert line["trace_id"] == ""
    assert line["span_id"] == ""
    assert line["route"] == "/api/x/"


def test_task_context_fills_tenant_and_task_id() -> None:
    bind_task(tenant="t_beta", task_id="task-1")
    try:
        line = _render(_record("running"))
    finally:
        unbind_task()
    assert (line["tenant"], line["task_id"]) == ("t_beta", "task-1")
    assert _render(_record("after"))["tenant"] == ""


def test_trace_ids_come_from_the_current_span(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = TracerProvider()  # a private provider: the global one is never touched
    monkeypatch.setattr(tracing._state, "enabled", True)
    with provider.get_tracer("test").start_as_current_span("work") as span:
        tracing.set_span_attributes({"sync.rows.pushed": 3}, conflicts=1, skipped=None)
        line = _render(_record("inside"))
        context = span.get_span_context()
    assert line["trace_id"] == f"{context.trace_id:032x}"
    assert line["span_id"] == f"{context.span_id:016x}"
    assert span.attributes == {"sync.rows.pushed": 3, "conflicts": 1}  # type: ignore[attr-defined]


def test_exception_text_is_redacted() -> None:
    try:
        raise ValueError("duplicate phone +15551234567 for password=hunter2-Secret")
    except ValueError:
        record = logging.LogRecord(
            "verdant.test", logging.ERROR, __file__, 1, "failed", None, __import__("sys").exc_info()
        )
    line = _render(record)
    assert "5551234567" not in json.dumps(line)
    assert "hunter2-Secret" not in json.dumps(line)
    assert "ValueError" in line["exc_info"]


@pytest.fixture
def captured_logs() -> Iterator[io.StringIO]:
    """What the configured console handler (settings LOGGING) writes, at DEBUG for our loggers."""
    root = logging.getLogger()
    (handler,) = [h for h in root.handlers if isinstance(h.formatter, VerdantJsonFormatter)]
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous_stream = handler.setStream(buffer)
    previous_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.setLevel(previous_level)
        handler.setStream(previous_stream)


def test_api_traffic_logs_no_secrets_or_phi(alpha: TenantWorld, captured_logs: io.StringIO) -> None:
    client = alpha.client()
    wrong = client.post(
        "/api/v1/auth/token/",
        {"email": ADMIN_EMAIL, "password": "Wrong-Password-9"},
        format="json",
    )
    assert wrong.status_code == 401
    admin = login(alpha)
    token = admin._credentials["HTTP_AUTHORIZATION"].split()[1]  # type: ignore[attr-defined]
    created = admin.post(
        "/api/v1/users/",
        {
            "email": "zelda.quixote@example.org",
            "full_name": "Zelda Quixote",
            "role": "nurse",
            "password": "Nurse-Password-77",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert admin.get("/api/v1/users/", {"search": "+15551234567"}).status_code == 200
    assert admin.get("/api/v1/users/", {"search": "Quixote"}).status_code == 200
    bad = alpha.client().get("/api/v1/auth/me/", HTTP_AUTHORIZATION="Bearer not-a-real-token-123")
    assert bad.status_code == 401
    # A careless log call with request headers and a body is redacted too.
    logging.getLogger("verdant.careless").warning(
        "headers=%s body=%s",
        {"HTTP_AUTHORIZATION": f"Bearer {token}"},
        '{"password": "Nurse-Password-77", "phone": "+15551234567"}',
    )

    output = captured_logs.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]
    request_lines = [line for line in lines if line["logger"] == "verdant.request"]
    assert [(line["method"], line["route"], line["status"]) for line in request_lines] == [
        ("POST", "/api/<str:version>/auth/token/", 401),
        ("POST", "/api/<str:version>/auth/token/", 200),
        ("POST", "/api/<str:version>/users/", 201),
        ("GET", "/api/<str:version>/users/", 200),
        ("GET", "/api/<str:version>/users/", 200),
        ("GET", "/api/<str:version>/auth/me/", 401),
    ]
    assert {line["tenant"] for line in request_lines} == {"t_alpha"}
    assert all(line["request_id"] for line in request_lines)
    for forbidden in (
        "Wrong-Password-9",
        alpha.password,
        "Nurse-Password-77",
        token,
        "not-a-real-token-123",
        "5551234567",
        "Quixote",
        "zelda.quixote",
    ):
        assert forbidden not in output, forbidden


def test_refused_requests_with_a_query_string_log_no_query(
    alpha: TenantWorld, captured_logs: io.StringIO
) -> None:
    """Django's request logger attaches the request, whose repr holds the query string."""
    response = alpha.client().get(
        "/api/v1/users/", {"search": "Jane Secretname", "phone": "+15551234567"}
    )
    assert response.status_code == 401
    output = captured_logs.getvalue()
    assert "Unauthorized: /api/v1/users/" in output
    assert "Secretname" not in output
    assert "15551234567" not in output
