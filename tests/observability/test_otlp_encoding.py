"""The hand-written OTLP encoder (observability/otlp_encoding.py) writes requests that decode to
exactly what the official encoder produces, for every feature a span can carry."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.status import Status, StatusCode

from observability.light_spans import LightTracerProvider
from observability.otlp_encoding import encode_export_request

ATTRIBUTES: dict[str, Any] = {
    "text": "héllo wörld ✓",
    "empty": "",
    "yes": True,
    "no": False,
    "zero": 0,
    "small": 7,
    "negative": -42,
    "int64.max": 2**63 - 1,
    "int64.min": -(2**63),
    "big": 2**40 + 3,
    "ratio": 0.25,
    "negative.float": -1e-300,
    "texts": ["a", "", "ü"],
    "ints": [1, -2, 3],
    "floats": [0.5, 2.0],
    "bools": [True, False],
    "long": "x" * 20_000,
}


def _spans(provider: TracerProvider, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    http = provider.get_tracer("verdant.http", "1.2.3", schema_url="https://opentelemetry.io/s/1")
    db = provider.get_tracer("verdant.db", attributes={"scope.attr": "v"})
    bare = provider.get_tracer("")
    remote_parent = SpanContext(
        trace_id=0x0AF7651916CD43DD8448EB211C80319C,
        span_id=0xB7AD6B7169203331,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value"), ("other", "x")]),
    )
    linked = SpanContext(trace_id=1, span_id=2, is_remote=False)
    parent_context = trace.set_span_in_context(NonRecordingSpan(remote_parent))
    with http.start_as_current_span(
        "GET api/<str:version>/things/",
        context=parent_context,
        kind=SpanKind.SERVER,
        attributes=ATTRIBUTES,
        links=[Link(linked, {"link.attr": 3}), Link(remote_parent)],
    ) as server:
        server.add_event("checkpoint", {"step": 1, "names": ["a", "b"]})
        server.add_event("bare")
        with db.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as query:
            query.set_status(Status(StatusCode.ERROR, "relation does not exist"))
            query.record_exception(RuntimeError("boom"))
        with bare.start_as_current_span("internal") as internal:
            internal.set_status(Status(StatusCode.OK))
    for kind in (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.INTERNAL):
        with http.start_as_current_span(f"kind {kind.name}", kind=kind):
            pass
    return list(exporter.get_finished_spans())


def _provider(
    resource: Resource,
    limits: SpanLimits | None = None,
    provider_class: type[TracerProvider] = TracerProvider,
) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = provider_class(resource=resource, span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _same_as_official(spans: list[ReadableSpan]) -> None:
    official = encode_spans(spans)
    ours = ExportTraceServiceRequest.FromString(encode_export_request(spans))
    assert ours == official
    assert ours.SerializeToString(deterministic=True) == official.SerializeToString(
        deterministic=True
    )


def test_every_span_feature_encodes_as_the_official_encoder_does() -> None:
    resource = Resource.create(
        {"service.name": "verdant-web", "deployment.environment": "test", "pid": 123},
        schema_url="https://opentelemetry.io/schemas/1.21.0",
    )
    provider, exporter = _provider(resource)
    spans = _spans(provider, exporter)
    assert len(spans) == 6
    _same_as_official(spans)


def test_spans_of_several_resources_and_scopes_group_alike() -> None:
    first, first_spans = _provider(Resource.create({"service.name": "verdant-web"}))
    second, second_spans = _provider(Resource.create({"service.name": "verdant-worker"}))
    mixed = _spans(first, first_spans) + _spans(second, second_spans)
    interleaved = [span for pair in zip(mixed[:6], mixed[6:], strict=True) for span in pair]
    _same_as_official(interleaved)


def test_dropped_attributes_events_and_links_are_counted() -> None:
    limits = SpanLimits(max_span_attributes=3, max_events=1, max_links=1, max_event_attributes=1)
    provider, exporter = _provider(Resource.create({}), limits)
    spans = _spans(provider, exporter)
    assert spans[2].dropped_attributes > 0
    _same_as_official(spans)


def test_an_empty_batch_is_an_empty_request() -> None:
    assert encode_export_request([]) == b""
    assert ExportTraceServiceRequest.FromString(b"") == encode_spans([])


def test_light_spans_encode_as_the_official_encoder_does() -> None:
    """Spans of observability/light_spans.py, as production records them."""
    resource = Resource.create({"service.name": "verdant-web"})
    limits = SpanLimits(max_span_attributes=3, max_events=1, max_links=1, max_event_attributes=1)
    for span_limits in (None, limits):
        provider, exporter = _provider(resource, span_limits, LightTracerProvider)
        spans = _spans(provider, exporter)
        assert len(spans) == 6
        _same_as_official(spans)
