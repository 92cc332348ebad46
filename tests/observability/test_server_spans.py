"""The server-span middleware on its own, with an in-memory exporter: parent from traceparent,
route naming, attributes without the query string, exceptions, excluded paths."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from observability import server_spans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
ROUTE = "api/<str:version>/clinical/patients/"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    server_spans.set_excluded_paths(["healthz", "readyz"])
    yield InMemorySpanExporter()
    server_spans.set_excluded_paths([])


def _middleware(exporter: InMemorySpanExporter, view: object) -> server_spans.ServerSpanMiddleware:
    middleware = server_spans.ServerSpanMiddleware(view)  # type: ignore[arg-type]
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    middleware.tracer = provider.get_tracer("test")
    return middleware


def _routed(status: int) -> object:
    def view(request: HttpRequest) -> HttpResponse:
        request.resolver_match = SimpleNamespace(route=ROUTE)  # type: ignore[assignment]
        return HttpResponse(status=status)

    return view


def test_a_span_continues_the_callers_trace_and_is_named_by_route(
    exporter: InMemorySpanExporter,
) -> None:
    request = RequestFactory().get(
        "/api/v1/clinical/patients/?search=Ada+Lovelace",
        HTTP_HOST="alpha.verdant.test",
        HTTP_TRACEPARENT=f"00-{TRACE_ID}-{PARENT_ID}-01",
        HTTP_USER_AGENT="field-app/1.0",
    )
    response = _middleware(exporter, _routed(200))(request)
    assert response.status_code == 200
    (span,) = exporter.get_finished_spans()
    assert span.kind == SpanKind.SERVER
    assert span.name == f"GET {ROUTE}"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert format(span.parent.span_id, "016x") == PARENT_ID
    attributes = dict(span.attributes or {})
    assert attributes["http.route"] == ROUTE
    assert attributes["http.response.status_code"] == 200
    assert attributes["url.path"] == "/api/v1/clinical/patients/"
    assert attributes["server.address"] == "alpha.verdant.test"
    assert attributes["user_agent.original"] == "field-app/1.0"
    # Search terms (patient names) never reach the tracing backend.
    assert not any("Ada" in str(value) for value in attributes.values())
    assert attributes["tenant.id"] == "public"
    assert span.status.status_code == StatusCode.UNSET


def test_without_traceparent_a_new_trace_starts(exporter: InMemorySpanExporter) -> None:
    request = RequestFactory().get("/api/v1/auth/me/", HTTP_HOST="alpha.verdant.test")
    _middleware(exporter, _routed(401))(request)
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert dict(span.attributes or {})["http.response.status_code"] == 401


def test_a_server_error_marks_the_span_and_an_exception_is_recorded(
    exporter: InMemorySpanExporter,
) -> None:
    def broken(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("boom")

    request = RequestFactory().get("/api/v1/x/", HTTP_HOST="alpha.verdant.test")
    with pytest.raises(RuntimeError):
        _middleware(exporter, broken)(request)
    _middleware(exporter, _routed(503))(request)
    raised, answered = exporter.get_finished_spans()
    assert raised.status.status_code == StatusCode.ERROR
    assert [event.name for event in raised.events] == ["exception"]
    assert answered.status.status_code == StatusCode.ERROR


def test_health_probes_get_no_span(exporter: InMemorySpanExporter) -> None:
    request = RequestFactory().get("/readyz", HTTP_HOST="alpha.verdant.test")
    assert _middleware(exporter, _routed(200))(request).status_code == 200
    assert exporter.get_finished_spans() == ()
