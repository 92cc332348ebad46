"""The pieces Verdant adds around the official instrumentation, on a private tracer provider
(the process-wide one is never installed in the test process): the sampler that keeps queries
outside a request from starting traces, the request span's tags and query-string cut, the
lazy user left alone, and the set-up stepping aside under opentelemetry-instrument."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.utils.functional import SimpleLazyObject
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision
from opentelemetry.trace import SpanKind

from observability import tracing
from observability.middleware import RequestSpanMiddleware
from tests.observability.conftest import ROOT, process_env
from tests.observability.otlp_receiver import SPAN_KIND_SERVER, running_receiver

TENANT = type("Tenant", (), {"schema_name": "t_alpha"})()


class _User:
    pk = "7f1c"
    role = "clinician"
    is_authenticated = True


@pytest.fixture
def exported() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exported: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider(
        sampler=tracing.NoOrphanClientSpans(ALWAYS_ON), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(exported))
    return provider


@pytest.fixture
def tracing_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing._state, "enabled", True)


def test_a_client_span_without_parent_starts_no_trace(
    provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as orphan:
        assert not orphan.is_recording()
    with (
        tracer.start_as_current_span("GET /x", kind=SpanKind.SERVER) as request_span,
        tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as query,
    ):
        assert query.is_recording()
    with tracer.start_as_current_span("publish", kind=SpanKind.PRODUCER) as producer:
        assert producer.is_recording()  # beat's enqueue: its own trace, as before
    assert [span.name for span in exported.get_finished_spans()] == ["SELECT", "GET /x", "publish"]
    assert exported.get_finished_spans()[0].parent.span_id == (  # type: ignore[union-attr]
        request_span.get_span_context().span_id
    )


def test_the_sampler_defers_to_its_delegate_for_everything_else() -> None:
    sampler = tracing.NoOrphanClientSpans(ALWAYS_ON)
    result = sampler.should_sample(None, 1, "GET /x", kind=SpanKind.SERVER)
    assert result.decision is Decision.RECORD_AND_SAMPLE
    assert sampler.should_sample(None, 1, "SELECT", SpanKind.CLIENT).decision is Decision.DROP
    assert sampler.get_description() == "NoOrphanClientSpans{AlwaysOnSampler}"


def _request(path: str = "/api/v1/users/?search=Jane+Doe") -> HttpRequest:
    request = RequestFactory().get(path, HTTP_HOST="alpha.verdant.test")
    request.tenant = TENANT  # type: ignore[attr-defined]
    request.request_id = "req-1"  # type: ignore[attr-defined]
    return request


def _url_attributes() -> dict[str, str]:
    return {
        "http.target": "/api/v1/users/?search=Jane+Doe",
        "http.url": "https://alpha.verdant.test/api/v1/users/?search=Jane+Doe#frag",
        "url.full": "https://alpha.verdant.test/api/v1/users/?phone=%2B15551234567",
        "url.query": "search=Jane+Doe",
        "url.path": "/api/v1/users/",
    }


def test_the_request_span_gets_tenant_user_request_id_and_loses_query_strings(
    provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    request = _request()
    # What DRF's Request.user setter stores on the Django request.
    request.user = _User()  # type: ignore[assignment]
    span = provider.get_tracer("test").start_span(
        "GET", kind=SpanKind.SERVER, attributes=_url_attributes()
    )
    tracing.tag_request_span(span, request)
    span.end()

    (finished,) = exported.get_finished_spans()
    assert dict(finished.attributes or {}) == {
        "http.target": "/api/v1/users/",
        "http.url": "https://alpha.verdant.test/api/v1/users/",
        "url.full": "https://alpha.verdant.test/api/v1/users/",
        "url.query": tracing.REDACTED_QUERY,
        "url.path": "/api/v1/users/",
        "tenant.id": "t_alpha",
        "enduser.id": "7f1c",
        "enduser.role": "clinician",
        "verdant.request_id": "req-1",
    }
    context = finished.context
    assert request.trace_ids == (  # type: ignore[attr-defined]
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )


def test_the_lazy_user_is_never_evaluated(
    provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    def session_lookup() -> Any:
        raise AssertionError("request.user was evaluated")

    request = _request()
    request.user = SimpleLazyObject(session_lookup)  # type: ignore[assignment]
    span = provider.get_tracer("test").start_span("GET", kind=SpanKind.SERVER)
    tracing.tag_request_span(span, request)
    span.end()

    attributes = dict(exported.get_finished_spans()[0].attributes or {})
    assert "enduser.id" not in attributes
    assert attributes["tenant.id"] == "t_alpha"
    assert tracing.authenticated_user(request) is None


def test_anonymous_and_public_requests_carry_no_user() -> None:
    request = _request()
    request.tenant = None  # type: ignore[attr-defined]
    request.user = type("Anonymous", (), {"is_authenticated": False, "pk": None})()
    assert tracing.authenticated_user(request) is None
    provider = TracerProvider(shutdown_on_exit=False)
    exported = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exported))
    span = provider.get_tracer("test").start_span("GET", kind=SpanKind.SERVER)
    tracing.tag_request_span(span, request)
    span.end()
    assert dict(exported.get_finished_spans()[0].attributes or {}) == {
        "tenant.id": "public",
        "verdant.request_id": "req-1",
    }


def test_a_span_that_does_not_record_is_left_alone() -> None:
    request = _request()
    tracing.tag_request_span(trace.INVALID_SPAN, request)
    assert not hasattr(request, "trace_ids")


def test_the_middleware_tags_the_current_span_on_the_way_out(
    provider: TracerProvider, exported: InMemorySpanExporter, tracing_on: None
) -> None:
    request = _request()

    def view(inner: HttpRequest) -> HttpResponse:
        inner.user = _User()  # type: ignore[assignment]  # DRF authenticated inside
        return HttpResponse(status=500)

    with provider.get_tracer("test").start_as_current_span(
        "GET", kind=SpanKind.SERVER, attributes=_url_attributes()
    ):
        response = RequestSpanMiddleware(view)(request)
    assert response.status_code == 500
    attributes = dict(exported.get_finished_spans()[0].attributes or {})
    assert attributes["enduser.id"] == "7f1c"
    assert attributes["http.target"] == "/api/v1/users/"


def test_the_middleware_tags_even_when_the_inner_stack_raises(
    provider: TracerProvider, exported: InMemorySpanExporter, tracing_on: None
) -> None:
    def broken(inner: HttpRequest) -> HttpResponse:
        raise RuntimeError("a middleware failed")

    with (
        provider.get_tracer("test").start_as_current_span(
            "GET", kind=SpanKind.SERVER, attributes=_url_attributes()
        ),
        pytest.raises(RuntimeError),
    ):
        RequestSpanMiddleware(broken)(_request())
    attributes = dict(exported.get_finished_spans()[0].attributes or {})
    assert attributes["http.target"] == "/api/v1/users/"
    assert attributes["tenant.id"] == "t_alpha"


def test_the_middleware_does_nothing_when_tracing_is_off(
    provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    assert tracing.tracing_enabled() is False
    request = _request()
    with provider.get_tracer("test").start_as_current_span("GET", kind=SpanKind.SERVER):
        RequestSpanMiddleware(lambda inner: HttpResponse())(request)
    assert "tenant.id" not in dict(exported.get_finished_spans()[0].attributes or {})
    assert not hasattr(request, "trace_ids")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/a/b/?q=1", "/a/b/"),
        ("/a/b/", "/a/b/"),
        ("http://h:8000/a?q=1#f", "http://h:8000/a"),
        ("https://h/a", "https://h/a"),
    ],
)
def test_without_query(url: str, expected: str) -> None:
    assert tracing.without_query(url) == expected


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "healthz,readyz"),
        ({"OTEL_PYTHON_EXCLUDED_URLS": "ping"}, "ping"),
        (
            {"OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "status", "OTEL_PYTHON_EXCLUDED_URLS": "x"},
            "status",
        ),
    ],
)
def test_excluded_urls_read_the_documented_variables(
    environ: dict[str, str], expected: str
) -> None:
    assert tracing.excluded_urls(environ) == expected


def test_attribute_values_are_cut_unless_the_operator_sets_a_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", raising=False)
    monkeypatch.delenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", raising=False)
    assert tracing.span_limits().max_span_attribute_length == tracing.DEFAULT_ATTRIBUTE_LENGTH
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "512")
    assert tracing.span_limits().max_span_attribute_length == 512


STEP_ASIDE = """
import json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.instrumentation.django import DjangoInstrumentor
from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor

theirs = TracerProvider()  # what opentelemetry-instrument installs before our code runs
trace.set_tracer_provider(theirs)
from settings.wsgi import application
from django.conf import settings
from observability import tracing

print(json.dumps({
    "enabled": tracing.tracing_enabled(),
    "same_provider": trace.get_tracer_provider() is theirs,
    "middleware": list(settings.MIDDLEWARE),
    "django": DjangoInstrumentor().is_instrumented_by_opentelemetry,
    "psycopg": PsycopgInstrumentor().is_instrumented_by_opentelemetry,
}))
"""


def test_the_set_up_steps_aside_when_a_provider_is_already_installed() -> None:
    """Under opentelemetry-instrument the SDK and the instrumentations are its business; our
    tags (RequestSpanMiddleware, the task's tenant) still switch on."""
    from django.conf import settings

    env = process_env(
        receiver=None,
        queue="unused",
        extra={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"},
    )
    completed = subprocess.run(
        [sys.executable, "-c", STEP_ASIDE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode(errors="replace")
    report = json.loads(completed.stdout.decode().strip().splitlines()[-1])
    assert report == {
        "enabled": True,
        "same_provider": True,
        "middleware": settings.MIDDLEWARE,
        "django": False,
        "psycopg": False,
    }


def test_outgoing_urls_lose_their_query_strings(
    provider: TracerProvider, exported: InMemorySpanExporter
) -> None:
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("task", kind=SpanKind.CONSUMER):
        span = tracer.start_span(
            "POST",
            kind=SpanKind.CLIENT,
            attributes={"http.url": "https://sms.example/send?to=%2B15551234567"},
        )
        tracing.outgoing_response_hook(span, None, None)
        span.end()
    assert dict(exported.get_finished_spans()[0].attributes or {}) == {
        "http.url": "https://sms.example/send"
    }


AGENT = str(Path(sys.executable).parent / "opentelemetry-instrument")
UNDER_AGENT = """
import json
from django.test import Client
from opentelemetry import trace
from settings.wsgi import application
from django.conf import settings
from observability import tracing

pod_ip = Client(HTTP_HOST="10.1.2.3:8000")
report = {
    "provider": type(trace.get_tracer_provider()).__name__,
    "enabled": tracing.tracing_enabled(),
    "position": settings.MIDDLEWARE.index(
        "opentelemetry.instrumentation.django.middleware.otel_middleware._DjangoMiddleware"
    ),
    "healthz": pod_ip.get("/healthz").status_code,
    "readyz": pod_ip.get("/readyz").status_code,
    "me": Client(HTTP_HOST="alpha.verdant.test").get("/api/v1/auth/me/?search=Jane+Doe").status_code,
}
trace.get_tracer_provider().force_flush()
print(json.dumps(report))
"""


def test_under_opentelemetry_instrument_the_documented_variables_are_enough(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> None:
    """docs/observability.md's agent set-up: the agent's provider and instrumentation, the
    middleware where the variable puts it, probes by pod IP answered, and Verdant's tags and
    query-string cut on the request span without any hook."""
    with running_receiver() as receiver, django_db_blocker.unblock():  # type: ignore[attr-defined]
        env = process_env(
            receiver=receiver,
            queue="unused",
            extra={
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_LOGS_EXPORTER": "none",
                "OTEL_PYTHON_DJANGO_MIDDLEWARE_POSITION": "3",
                "OTEL_PYTHON_DJANGO_EXCLUDED_URLS": "healthz,readyz",
            },
        )
        completed = subprocess.run(
            [AGENT, sys.executable, "-c", UNDER_AGENT],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert completed.returncode == 0, completed.stderr.decode(errors="replace")
        report = json.loads(completed.stdout.decode().strip().splitlines()[-1])
        spans = receiver.wait_for(lambda got: any(s.kind == SPAN_KIND_SERVER for s in got))
    assert report == {
        "provider": "TracerProvider",
        "enabled": True,
        "position": 3,
        "healthz": 200,
        "readyz": 200,
        "me": 401,
    }
    (request_span,) = [s for s in spans if s.kind == SPAN_KIND_SERVER]
    assert request_span.attributes["tenant.id"] == "t_alpha"
    assert "Jane" not in repr(request_span.attributes)
    assert request_span.attributes["http.url"] == "http://alpha.verdant.test/api/v1/auth/me/"
