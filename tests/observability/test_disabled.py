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
from observability.tracing import TENANT_ROUTING_MIDDLEWARE
from tests.conftest import TenantWorld, login
from tests.observability.conftest import ROOT, process_env

DOCUMENTED_POSITION = 5

# Run in a fresh process through the WSGI entry point: import settings.wsgi (which calls
# configure_tracing), serve one request and the probes by pod IP, report what exists.
PROBE = """
import json, threading
import psycopg
from opentelemetry import trace
from opentelemetry.instrumentation.celery import CeleryInstrumentor
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from settings.wsgi import application
from django.conf import settings
from django.test import Client
from observability import tracing
from observability.tracing import TENANT_ROUTING_MIDDLEWARE
from redis.client import Redis

response = Client(HTTP_HOST="alpha.verdant.test").get("/api/v1/auth/me/")
pod_ip = Client(HTTP_HOST="10.1.2.3:8000")
provider = trace.get_tracer_provider()
print(json.dumps({
    "enabled": tracing.tracing_enabled(),
    "provider": type(provider).__name__,
    "sampler": provider.sampler.get_description() if hasattr(provider, "sampler") else "",
    "threads": sorted(t.name for t in threading.enumerate()),
    "middleware": list(settings.MIDDLEWARE),
    "instrumented": sorted(
        type(instrumentor).__name__
        for instrumentor in (DjangoInstrumentor(), PsycopgInstrumentor(), RedisInstrumentor(),
                             CeleryInstrumentor(), RequestsInstrumentor())
        if instrumentor.is_instrumented_by_opentelemetry
    ),
    "psycopg_wrapped": hasattr(psycopg.connect, "__wrapped__"),
    "redis_wrapped": hasattr(Redis.execute_command, "__wrapped__"),
    "status": response.status_code,
    "error": response.json().get("error", {}),
    "healthz_by_pod_ip": pod_ip.get("/healthz").status_code,
    "readyz_by_pod_ip": pod_ip.get("/readyz").status_code,
}))
"""
OTEL_MIDDLEWARE = (
    "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
)
TRACING_ON = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_BSP_EXPORT_TIMEOUT": "100"}


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
    assert report["middleware"] == settings.MIDDLEWARE
    assert report["instrumented"] == []
    assert report["psycopg_wrapped"] is False
    assert report["redis_wrapped"] is False
    assert report["status"] == 401
    assert "trace_id" not in report["error"]  # type: ignore[operator]
    assert (report["healthz_by_pod_ip"], report["readyz_by_pod_ip"]) == (200, 200)


def test_the_probe_sees_tracing_when_it_is_on(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> None:
    """The control for the test above: the same probe with an endpoint finds everything, the
    official middleware right after tenant routing, and the probes by pod IP still answer."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        report = _probe(TRACING_ON)
    assert report["enabled"] is True
    assert report["provider"] == "TracerProvider"  # the SDK's own
    assert (
        report["sampler"]
        == "NoOrphanClientSpans{ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler,localParentSampled:AlwaysOnSampler,localParentNotSampled:AlwaysOffSampler}}"
    )
    assert "OtelBatchSpanRecordProcessor" in report["threads"]  # type: ignore[operator]
    middleware = report["middleware"]
    assert isinstance(middleware, list)
    routing = middleware.index(TENANT_ROUTING_MIDDLEWARE)
    assert middleware[routing + 1 : routing + 3] == [
        OTEL_MIDDLEWARE,
        "observability.middleware.RequestSpanMiddleware",
    ]
    assert [m for m in middleware if m != OTEL_MIDDLEWARE] == settings.MIDDLEWARE
    assert report["instrumented"] == [
        "CeleryInstrumentor",
        "DjangoInstrumentor",
        "PsycopgInstrumentor",
        "RedisInstrumentor",
        "RequestsInstrumentor",
    ]
    assert report["psycopg_wrapped"] is True
    assert report["redis_wrapped"] is True
    assert len(report["error"]["trace_id"]) == 32  # type: ignore[index]
    assert (report["healthz_by_pod_ip"], report["readyz_by_pod_ip"]) == (200, 200)


def test_the_documented_variables_move_the_middleware_and_pick_the_sampler(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> None:
    """OTEL_PYTHON_DJANGO_MIDDLEWARE_POSITION wins over our position. At 0 the instrumentation's
    middleware runs first and asks for the absolute URL of a probe by pod IP, a host outside
    ALLOWED_HOSTS: the 400 that the default position avoids."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        report = _probe(
            {
                **TRACING_ON,
                "OTEL_PYTHON_DJANGO_MIDDLEWARE_POSITION": "0",
                "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": "0.1",
            }
        )
    assert report["middleware"][0] == OTEL_MIDDLEWARE  # type: ignore[index]
    assert str(report["sampler"]).startswith(
        "NoOrphanClientSpans{ParentBased{root:TraceIdRatioBased{0.1}"
    )
    assert report["healthz_by_pod_ip"] == 400


def test_the_documented_middleware_position_is_right_after_tenant_routing() -> None:
    """docs/observability.md tells opentelemetry-instrument users this number."""
    assert settings.MIDDLEWARE.index(TENANT_ROUTING_MIDDLEWARE) + 1 == DOCUMENTED_POSITION
    assert settings.MIDDLEWARE[DOCUMENTED_POSITION] == (
        "observability.middleware.RequestSpanMiddleware"
    )
    assert f"OTEL_PYTHON_DJANGO_MIDDLEWARE_POSITION={DOCUMENTED_POSITION}" in (
        ROOT / "docs" / "observability.md"
    ).read_text(encoding="utf-8")


def test_this_test_process_has_no_tracing(alpha: TenantWorld) -> None:
    response = login(alpha).get("/api/v1/no/such/route/")

    assert response.status_code == 404
    assert "trace_id" not in response.json()["error"]
    assert tracing.tracing_enabled() is False
    assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider"
    assert not [t.name for t in threading.enumerate() if "Otel" in t.name]
    assert not [m for m in settings.MIDDLEWARE if "opentelemetry" in m]
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
