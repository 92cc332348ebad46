"""The lighter span path (observability/light_spans.py) against the SDK's own: the same scenario
runs through ``TracerProvider`` and ``LightTracerProvider`` with the same ids, limits and
samplers, and every field an exporter or processor reads must come out the same."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from observability.light_spans import LightSpan, LightTracerProvider

RESOURCE = Resource.create({"service.name": "verdant-test"})
EXPLICIT_START = 1_700_000_000_000_000_000


class CountingIds(IdGenerator):
    """The same ids, in the same order, for both providers (the ratio sampler reads them)."""

    def __init__(self) -> None:
        self._numbers = itertools.count(1)

    def generate_span_id(self) -> int:
        return next(self._numbers)

    def generate_trace_id(self) -> int:
        return next(self._numbers) * 0x9E3779B97F4A7C15_F39CC0605CEDC834 % (1 << 128) or 1


class RecordingProcessor(SpanProcessor):
    """Every hook call, in order: the fan-out must call the same hooks as the SDK's."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.calls.append(("on_start", span.name))

    def _on_ending(self, span: Any) -> None:
        self.calls.append(("_on_ending", span.name))

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(("on_end", span.name))


class Unstringable:
    """An attribute value whose type has neither __str__ nor __repr__ of its own."""


class Named:
    def __str__(self) -> str:
        return "named-value"


class Stop(BaseException):
    """Not an Exception: spans must not record it (GeneratorExit, KeyboardInterrupt...)."""


def scenario(tracer: trace.Tracer) -> None:
    remote_parent = SpanContext(
        trace_id=0xABC,
        span_id=0xDEF,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
        trace_state=TraceState([("vendor", "value")]),
    )
    unsampled_remote = SpanContext(
        trace_id=0x123, span_id=0x456, is_remote=True, trace_flags=TraceFlags(0)
    )
    attributes: dict[Any, Any] = {
        "text": "plain",
        "flag": True,
        "count": 7,
        "ratio": 0.5,
        "names": ["a", "b"],
        "numbers": (1, 2, 3),
        "raw": b"\x00\x01",
        "nothing": None,
        "mapping": {"inner": "x", "deep": {"n": 1}},
        "named": Named(),
        "unstringable": Unstringable(),
        "": "empty key",
        3: "number key",
        "long": "a value longer than the limits",
    }
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER, attributes=attributes) as root:
        root.set_attribute("text", "moved to the end")
        invalid: dict[str, Any] = {"late": 1, "later": [True, False], "bad": object()}
        root.set_attributes(invalid)
        root.add_event("checkpoint", {"step": 1, "detail": "x" * 40})
        root.add_event("second")
        with tracer.start_as_current_span(
            "child",
            kind=SpanKind.CLIENT,
            links=[
                Link(remote_parent, {"why": "batch", "extra": 2}),
                Link(INVALID_SPAN_CONTEXT),
                Link(unsampled_remote),
            ],
        ) as child:
            child.update_name("child renamed")
            child.set_status(Status(StatusCode.OK))
            child.set_status(Status(StatusCode.ERROR, "ignored after OK"))
            child.add_link(remote_parent, {"added": "later"})
            child.add_link(INVALID_SPAN_CONTEXT)
        with pytest.raises(ValueError, match="boom"), tracer.start_as_current_span("failing"):
            raise ValueError("boom")
        with (
            pytest.raises(KeyError),
            tracer.start_as_current_span(
                "failing quietly", record_exception=False, set_status_on_exception=False
            ),
        ):
            raise KeyError("quiet")
        with pytest.raises(Stop), tracer.start_as_current_span("stopped"):
            raise Stop()
        with tracer.start_as_current_span("kept open", end_on_exit=False) as kept:
            kept.set_attribute("open", True)
        kept.set_status(StatusCode.ERROR, "explicit")
        kept.end()
        # Everything after end() is ignored (and warned about), as in the SDK.
        kept.set_attribute("after", 1)
        kept.set_attributes({"after": 2})
        kept.add_event("after")
        kept.update_name("after")
        kept.set_status(StatusCode.OK)
        kept.end()

        @tracer.start_as_current_span("decorated")
        def work(value: int) -> int:
            trace.get_current_span().set_attribute("value", value)
            return value * 2

        assert work(2) == 4
        assert work(3) == 6

    remote_context = trace.set_span_in_context(NonRecordingSpan(remote_parent))
    remote_child = tracer.start_span(
        "remote child", context=remote_context, start_time=EXPLICIT_START
    )
    remote_child.end(end_time=EXPLICIT_START + 5)
    unsampled = tracer.start_span(
        "unsampled child",
        context=trace.set_span_in_context(NonRecordingSpan(unsampled_remote)),
    )
    unsampled.end()
    for index in range(6):  # several roots: the ratio sampler keeps some and drops others
        with tracer.start_as_current_span(f"root {index}") as span:
            span.set_attribute("index", index)
            with tracer.start_as_current_span(f"root {index} child"):
                pass


def describe(span: ReadableSpan) -> dict[str, Any]:
    """Every field exporters read; times reduced to what is comparable between two runs."""
    context = span.context
    assert context is not None
    assert span.start_time is not None
    assert span.end_time is not None
    assert span.end_time >= span.start_time
    explicit = span.start_time == EXPLICIT_START

    def event_attributes(event: Any) -> list[tuple[str, Any]]:
        items = list((event.attributes or {}).items())
        # The SDK's generator-based context managers add their own frames to the traceback;
        # the exception itself (type, message, the line that raised it) must match.
        return [
            (key, value.strip().splitlines()[-1] if key == "exception.stacktrace" else value)
            for key, value in items
        ]

    return {
        "name": span.name,
        "context": (context.trace_id, context.span_id, int(context.trace_flags)),
        "trace_state": list(context.trace_state.items()),
        "parent": (
            None
            if span.parent is None
            else (span.parent.trace_id, span.parent.span_id, span.parent.is_remote)
        ),
        "kind": span.kind,
        "attributes": list((span.attributes or {}).items()),
        "dropped_attributes": span.dropped_attributes,
        "events": [
            (event.name, event_attributes(event), event.dropped_attributes) for event in span.events
        ],
        "dropped_events": span.dropped_events,
        "links": [
            (
                link.context.trace_id,
                link.context.span_id,
                list((link.attributes or {}).items()),
                link.dropped_attributes,
            )
            for link in span.links
        ],
        "dropped_links": span.dropped_links,
        "status": (span.status.status_code, span.status.description),
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope,
        "times": (span.start_time, span.end_time) if explicit else "recorded",
    }


def run(
    provider_class: type[TracerProvider], *, sampler: Sampler | None, limits: SpanLimits | None
) -> tuple[list[dict[str, Any]], list[tuple[str, str]], list[ReadableSpan]]:
    exporter = InMemorySpanExporter()
    recorder = RecordingProcessor()
    provider = provider_class(
        sampler=sampler, resource=RESOURCE, id_generator=CountingIds(), span_limits=limits
    )
    provider.add_span_processor(recorder)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    token = context_api.attach(context_api.Context())
    try:
        scenario(provider.get_tracer("verdant.test", "1.0", "https://example.test/schema"))
    finally:
        context_api.detach(token)
    provider.shutdown()
    spans = list(exporter.get_finished_spans())
    return [describe(span) for span in spans], recorder.calls, spans


SAMPLERS: dict[str, Sampler | None] = {
    "default": None,
    "always-on": ALWAYS_ON,
    "always-off": ALWAYS_OFF,
    "parent-based-off": ParentBased(ALWAYS_OFF),
    "ratio": TraceIdRatioBased(0.5),
    "parent-based-ratio": ParentBased(TraceIdRatioBased(0.5)),
}
LIMITS: dict[str, SpanLimits | None] = {
    "default-limits": None,
    "tight-limits": SpanLimits(
        max_span_attributes=4,
        max_span_attribute_length=5,
        max_events=1,
        max_links=1,
        max_event_attributes=1,
        max_link_attributes=1,
        max_attribute_length=3,
    ),
    "no-attributes": SpanLimits(max_span_attributes=0),
}


@pytest.fixture(autouse=True)
def _quiet_sdk_warnings(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # Both paths log the same warnings (ended spans, invalid attributes); only their spans are
    # compared here.
    with caplog.at_level("ERROR"):
        yield


@pytest.mark.parametrize("limits", list(LIMITS.values()), ids=list(LIMITS))
@pytest.mark.parametrize("sampler", list(SAMPLERS.values()), ids=list(SAMPLERS))
def test_light_spans_export_what_the_sdk_exports(
    sampler: Sampler | None, limits: SpanLimits | None
) -> None:
    expected, expected_calls, _ = run(TracerProvider, sampler=sampler, limits=limits)
    got, got_calls, spans = run(LightTracerProvider, sampler=sampler, limits=limits)
    assert got == expected
    assert got_calls == expected_calls
    assert all(isinstance(span, LightSpan) for span in spans)


def test_the_scenario_exercises_what_it_claims() -> None:
    """A guard for the comparison above: the SDK's run really has drops, errors, links,
    events, remote parents and truncation to compare."""
    described, _, _ = run(TracerProvider, sampler=None, limits=LIMITS["tight-limits"])
    by_name = {span["name"]: span for span in described}
    assert by_name["root"]["dropped_attributes"] > 0
    assert any(len(str(value)) == 5 for _, value in by_name["root"]["attributes"])
    assert by_name["root"]["dropped_events"] == 1
    assert by_name["child renamed"]["dropped_links"] > 0
    assert by_name["failing"]["status"][0] == StatusCode.ERROR
    assert by_name["failing quietly"]["status"][0] == StatusCode.UNSET
    assert by_name["stopped"]["events"] == []
    assert by_name["kept open"]["status"] == (StatusCode.ERROR, "explicit")
    assert by_name["remote child"]["parent"] == (0xABC, 0xDEF, True)
    assert by_name["remote child"]["trace_state"] == [("vendor", "value")]
    assert "unsampled child" not in by_name
    ratio, _, _ = run(TracerProvider, sampler=TraceIdRatioBased(0.5), limits=None)
    kept_roots = {span["name"] for span in ratio if span["name"].startswith("root ")}
    assert 0 < len([name for name in kept_roots if "child" not in name]) < 6


def test_an_ended_span_reaches_processors_read_only() -> None:
    """Processors get the span itself, not a copy: after end() nothing can change it."""
    ended: list[ReadableSpan] = []

    class Keep(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            ended.append(span)

    provider = LightTracerProvider()
    provider.add_span_processor(Keep())
    span = provider.get_tracer("t").start_span("s", attributes={"a": 1})
    span.end()
    (received,) = ended
    span.set_attribute("a", 2)
    span.update_name("changed")
    span.set_status(StatusCode.ERROR)
    assert dict(received.attributes or {}) == {"a": 1}
    assert received.name == "s"
    assert received.status.status_code == StatusCode.UNSET
    with pytest.raises(TypeError):
        received.attributes["a"] = 3  # type: ignore[index]


def test_the_fan_out_skips_only_hooks_that_do_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = LightTracerProvider()
    batch = BatchSpanProcessor(InMemorySpanExporter())
    recorder = RecordingProcessor()
    provider.add_span_processor(batch)
    provider.add_span_processor(recorder)
    fan_out: Any = provider._active_span_processor
    assert fan_out._starting == (recorder,)
    assert fan_out._ending == (recorder,)
    assert fan_out._ended == (batch, recorder)
    assert fan_out._span_processors == (batch, recorder)
    calls: list[str] = []
    original: Callable[..., None] = batch.on_end

    def counted_on_end(span: ReadableSpan) -> None:
        calls.append(span.name)
        original(span)

    monkeypatch.setattr(batch, "on_end", counted_on_end)
    provider.get_tracer("t").start_span("s").end()
    assert calls == ["s"]
    assert recorder.calls == [("on_start", "s"), ("_on_ending", "s"), ("on_end", "s")]
    provider.shutdown()


def test_spans_of_many_threads_share_the_locks_safely() -> None:
    """The span and attribute locks are shared by every light span (module docstring): spans
    written from several threads at once all arrive whole."""
    import threading

    exporter = InMemorySpanExporter()
    provider = LightTracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    per_thread = 300

    def work(worker: int) -> None:
        for index in range(per_thread):
            with tracer.start_as_current_span(f"w{worker}", attributes={"i": index}) as span:
                span.set_attribute("worker", worker)
                span.set_attributes({"pair": [worker, index]})
                span.add_event("tick", {"i": index})
                with pytest.raises(ValueError, match="x"), tracer.start_as_current_span("child"):
                    raise ValueError("x")

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    spans = exporter.get_finished_spans()
    assert len(spans) == 8 * per_thread * 2
    parents = [span for span in spans if span.name != "child"]
    for span in parents:
        attributes = dict(span.attributes or {})
        worker = int(span.name[1:])
        assert attributes["worker"] == worker
        assert attributes["pair"] == (worker, attributes["i"])
        assert [event.name for event in span.events] == ["tick"]
    assert all(
        [event.name for event in span.events] == ["exception"]
        for span in spans
        if span.name == "child"
    )
    provider.shutdown()
