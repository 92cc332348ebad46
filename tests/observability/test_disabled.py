"""Disabled means free: without an OTLP endpoint (or with OTEL_SDK_DISABLED=true or
OTEL_TRACES_EXPORTER=none) nothing is instrumented, no provider or exporter thread exists, and a
request creates no span."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import psycopg
import pytest
from django.conf import settings
from opentelemetry import trace

from observability import tracing
from tests.conftest import TenantWorld, login
from tests.observability.conftest import ROOT, process_env

# Run in a fresh process through the WSGI entry point: import settings.wsgi (which calls
# configure_tracing), serve one request, report what exists.
PROBE = """
import json, threading
import psycopg
from opentelemetry import trace
from settings.wsgi import application
from django.conf import settings
from django.test import Client
from django.db import connection
from observability import query_spans, redis_spans, tracing
from redis.client import Pipeline, Redis

response = Client(HTTP_HOST="alpha.verdant.test").get("/api/v1/auth/me/")
print(json.dumps({
    "enabled": tracing.tracing_enabled(),
    "provider": type(trace.get_tracer_provider()).__name__,
    "threads": sorted(t.name for t in threading.enumerate()),
    "otel_middleware": [m for m in settings.MIDDLEWARE if "opentelemetry" in m or "span" in m],
    "psycopg_wrapped": hasattr(psycopg.connect, "__wrapped__"),
    "query_spans": query_spans.installed(),
    "redis_spans": redis_spans.installed(),
    "redis_wrapped": sorted(
        f"{cls.__name__}.{name}"
        for cls, name in ((Redis, "execute_command"), (Pipeline, "execute"),
                          (Pipeline, "immediate_execute_command"))
        if hasattr(cls.__dict__[name], "__wrapped__")
    ),
    "connection_wrappers": [w.__name__ for w in connection.execute_wrappers],
    "status": response.status_code,
    "error": response.json().get("error", {}),
}))
"""


def _probe(extra_env: dict[str, str]) -> dict[str, object]:
    env = process_env(receiver=None, queue="unused", extra=extra_env)
    completed = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    return dict(json.loads(completed.stdout.decode().strip().splitlines()[-1]))


@pytest.mark.parametrize(
    "extra_env",
    [
        pytest.param({}, id="no-endpoint"),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"},
            id="sdk-disabled",
        ),
        pytest.param(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_TRACES_EXPORTER": "none"},
            id="exporter-none",
        ),
    ],
)
def test_disabled_tracing_installs_nothing_and_starts_no_thread(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest, extra_env: dict[str, str]
) -> None:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        report = _probe(extra_env)
    assert report["enabled"] is False
    assert report["provider"] == "ProxyTracerProvider"
    assert not [name for name in report["threads"] if "Otel" in name]  # type: ignore[attr-defined]
    assert report["otel_middleware"] == []
    assert report["psycopg_wrapped"] is False
    assert report["query_spans"] is False
    assert report["connection_wrappers"] == []
    assert report["redis_spans"] is False
    assert report["redis_wrapped"] == []
    assert report["status"] == 401
    assert "trace_id" not in report["error"]  # type: ignore[operator]


def test_the_probe_sees_tracing_when_it_is_on(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> None:
    """The control for the test above: the same probe with an endpoint finds everything."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        report = _probe(
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_EXPORT_TIMEOUT": "100"}
        )
    assert report["enabled"] is True
    assert report["provider"] == "LightTracerProvider"  # observability/light_spans.py
    assert "OtelBatchSpanRecordProcessor" in report["threads"]  # type: ignore[operator]
    assert report["otel_middleware"] == ["observability.server_spans.ServerSpanMiddleware"]
    # Queries are traced by our execute wrapper (observability/query_spans.py), not by
    # wrapping psycopg.
    assert report["psycopg_wrapped"] is False
    assert report["query_spans"] is True
    assert report["connection_wrappers"] == ["query_span"]
    assert report["redis_spans"] is True
    assert report["redis_wrapped"] == [
        "Pipeline.execute",
        "Pipeline.immediate_execute_command",
        "Redis.execute_command",
    ]
    assert len(report["error"]["trace_id"]) == 32  # type: ignore[index]


def test_this_test_process_has_no_tracing(alpha: TenantWorld) -> None:
    response = login(alpha).get("/api/v1/no/such/route/")

    assert response.status_code == 404
    assert "trace_id" not in response.json()["error"]
    assert tracing.tracing_enabled() is False
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    assert not [t.name for t in threading.enumerate() if "Otel" in t.name]
    assert not [m for m in settings.MIDDLEWARE if "opentelemetry" in m or "span" in m]
    assert not hasattr(psycopg.connect, "__wrapped__")


def test_helpers_do_nothing_when_off() -> None:
    tracing.set_span_attributes({"sync.rows.pushed": 3}, conflicts=1)
    with tracing.start_span("sync.push", {"sync.rows.pushed": 3}):
        assert trace.get_current_span() is trace.INVALID_SPAN
    assert tracing.current_trace_id() == ""
    assert tracing.recording_trace_id() == ""
    assert tracing.current_span_ids() == ("", "")
    tracing.record_exception(RuntimeError("nothing records this"))


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "TRUE"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "false"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_requested_reads_the_standard_variables(
    environ: dict[str, str], expected: bool
) -> None:
    assert tracing.tracing_requested(environ) is expected
