"""A lighter span path through the OpenTelemetry SDK: the same spans, for a fraction of the CPU.

Tracing's budget is 10 % of a request, and a patient-list request records four spans (server,
two statements, the throttle's Redis call). The SDK's own path spends most of a span's cost on
machinery these spans never use: a generator-based context manager wrapped around another one
(``start_as_current_span`` -> ``use_span``), attribute values re-validated through ``isinstance``
checks against abstract base classes, two ``BoundedList`` objects for events and links that stay
empty, and a ``ReadableSpan`` copy of every span as it ends.

``LightTracerProvider`` is the SDK's ``TracerProvider`` handing out ``LightTracer``; its spans are
``LightSpan``, a subclass of the SDK's ``Span``. What stays the SDK's, unchanged: the sampler
(``OTEL_TRACES_SAMPLER``), the id generator, span limits (``OTEL_SPAN_*_LIMIT``, ``OTEL_ATTRIBUTE_*``),
the resource, span processors and exporters, the tracer configurator, and every method of
``Span`` not named below. What differs, and why it is the same to every reader:

* ``start_as_current_span`` is a class-based context manager (``_ActiveSpan``) doing exactly what
  ``use_span`` does: attach the span, on an ``Exception`` record it and set an ERROR status
  (as the arguments say), detach, end;
* attributes whose value is a plain ``str``/``bool``/``int``/``float`` skip the validation that
  cannot change them; anything else (sequences, mappings, bytes, other types, over-long strings,
  a full attribute table) goes through the SDK's ``BoundedAttributes`` code as before;
* events and links get their ``BoundedList`` when the first one is added;
* the processors' ``on_end`` receives the span itself, ended and therefore immutable (every
  setter is a no-op after ``end``), instead of a copy sharing the same attributes and events.

tests/observability/test_light_spans.py runs the same operations through the SDK's classes and
these, and compares what reaches an exporter. ``opentelemetry-sdk`` is pinned in
requirements.lock; an upgrade re-runs that test before it lands.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from time import time_ns
from types import MappingProxyType, TracebackType
from typing import Any
from warnings import filterwarnings

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import (
    Event,
    EventBase,
    InstrumentationInfo,
    ReadableSpan,
    Span,
    SpanProcessor,
    SynchronousMultiSpanProcessor,
    Tracer,
    TracerProvider,
)
from opentelemetry.sdk.trace._tracer_metrics import noop as _no_metrics
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NoOpTracer, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from observability.leaf_spans import record_error

logger = logging.getLogger(__name__)

_PLAIN_VALUE_TYPES = frozenset({str, bool, int, float})
_UNSET_STATUS = Status(StatusCode.UNSET)
_NO_EVENTS: tuple[Event, ...] = ()
_NO_LINKS: tuple[trace_api.Link, ...] = ()
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
# The flags with the random-trace-id bit, built once (a TraceFlags per span is an object the
# garbage collector tracks until the span is exported).
_WITH_RANDOM_ID = {
    flags: TraceFlags(flags | TraceFlags.RANDOM_TRACE_ID) for flags in (_SAMPLED, _NOT_SAMPLED)
}
# One lock for every span's and one for every attribute table's few-bytecode critical sections,
# in place of two lock objects per span: under the GIL a per-span lock excludes nothing a shared
# one does not, and each is one more object the garbage collector tracks for as long as the
# span waits for export (hundreds of requests, long enough to reach the oldest generation).
# Never held while taking the other; both reentrant, so code that runs while one is held (a
# warning logged by the SDK, a logging filter touching the current span) cannot deadlock on it.
_SPAN_LOCK = threading.RLock()
_ATTRIBUTES_LOCK = threading.RLock()  # _set_items also hands pairs to the parent under it


def _is_plain_pair(key: Any, value: Any) -> bool:
    """A non-empty str key and a str/bool/int/float value: nothing the SDK's cleaning changes."""
    return type(value) in _PLAIN_VALUE_TYPES and type(key) is str and bool(key)


class _FastAttributes(BoundedAttributes):
    """``BoundedAttributes`` whose setters take a plain value straight into the table when no
    limit is reached; every other case is the parent's code."""

    def __init__(
        self,
        maxlen: int | None,
        max_value_len: int | None,
        attributes: Mapping[str, types.AnyValue] | None,
    ) -> None:
        # The parent's __init__, minus the checks of limits SpanLimits already validated.
        self._dict: dict[str, types.AnyValue] = {}
        self.maxlen = maxlen
        self.dropped = 0
        self.max_value_len = max_value_len
        self._lock = _ATTRIBUTES_LOCK  # type: ignore[assignment]
        self._immutable = False
        if attributes:
            self._set_items(attributes)

    def _plain(self, key: Any, value: Any) -> bool:
        """Whether (key, value) needs none of the parent's cleaning or limits."""
        if not _is_plain_pair(key, value):
            return False
        max_value_len = self.max_value_len
        if max_value_len is not None and type(value) is str and len(value) > max_value_len:
            return False
        table = self._dict
        return self.maxlen is None or key in table or len(table) < self.maxlen

    def __setitem__(self, key: str, value: types.AnyValue) -> None:
        if self._immutable or not self._plain(key, value):
            super().__setitem__(key, value)
            return
        table = self._dict
        with self._lock:
            # As the parent: a key set again moves to the end (the oldest is dropped first).
            table.pop(key, None)
            table[key] = value

    def _set_items(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._immutable:
            super()._set_items(attributes)
            return
        table = self._dict
        no_limit_reachable = self.max_value_len is None and (
            self.maxlen is None or len(table) + len(attributes) <= self.maxlen
        )
        if no_limit_reachable:
            # No limit reachable: plain pairs go straight in, in order; any other pair takes
            # the parent's path right where it stands (the lock is reentrant for that).
            with self._lock:
                for key, value in attributes.items():
                    if _is_plain_pair(key, value):
                        table.pop(key, None)
                        table[key] = value
                    else:
                        # The parent's cleaning of a mapping (a non-str key becomes its str,
                        # as the SDK does for the attributes a span starts with).
                        super()._set_items({key: value})
            return
        super()._set_items(attributes)


class LightSpan(Span):
    """The SDK's ``Span`` built and ended without the parts a span rarely uses (module
    docstring). Instantiated only by ``LightTracer``."""

    def __init__(
        self,
        tracer: LightTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        attributes: Mapping[str, types.AnyValue] | None,
        kind: SpanKind,
        links: Sequence[trace_api.Link],
        record_exception: bool,
        set_status_on_exception: bool,
        record_end_metrics: Callable[[], None] | None,
    ) -> None:
        # Span.__init__ and ReadableSpan.__init__ field by field (the tracer's sampler, resource,
        # processors, limits and scope, as the SDK's tracer passes them), with no BoundedList.
        limits = tracer._span_limits
        self._name = name
        self._context = context
        self._kind = kind
        self._instrumentation_info = tracer.instrumentation_info
        self._instrumentation_scope = tracer._instrumentation_scope
        self._parent = parent
        self._start_time: int | None = None
        self._end_time: int | None = None
        self._resource = tracer.resource
        self._status = _UNSET_STATUS
        self._sampler = tracer.sampler
        self._trace_config = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception
        self._span_processor = tracer.span_processor
        self._limits = limits
        self._lock = _SPAN_LOCK  # type: ignore[assignment]
        self._table = _FastAttributes(
            limits.max_span_attributes, limits.max_span_attribute_length, attributes
        )
        self._attributes = self._table
        self._events: Any = _NO_EVENTS
        self._links: Any = self._new_links(links) if links else _NO_LINKS
        self._record_end_metrics = record_end_metrics

    @property
    def attributes(self) -> types.Attributes:
        # A read-only view of the table itself: the same mapping, without the Python-level
        # Mapping.get/__iter__ of BoundedAttributes on every read (processors, exporters).
        return MappingProxyType(self._table._dict)

    # The counts exporters read for every span, without the ABC isinstance checks of
    # ReadableSpan's properties: the containers are known here.
    @property
    def dropped_attributes(self) -> int:
        return self._table.dropped

    @property
    def dropped_events(self) -> int:
        return 0 if self._events is _NO_EVENTS else int(self._events.dropped)

    @property
    def dropped_links(self) -> int:
        return 0 if self._links is _NO_LINKS else int(self._links.dropped)

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        self._table._set_items(attributes)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is not None:
            logger.warning("Setting attribute on ended span.")
            return
        self._table[key] = value

    def _add_event(self, event: EventBase) -> None:
        self._append("_events", self._limits.max_events, event, "_add_event")

    def _add_link(self, link: trace_api.Link) -> None:
        self._append("_links", self._limits.max_links, link, "_add_link")

    def _append(self, field: str, limit: int | None, item: Any, operation: str) -> None:
        """Add an event or link, its BoundedList made on first use; ignored (and warned about,
        as the SDK's ``_check_span_ended``) once the span has ended."""
        with self._lock:
            ended = self._end_time is not None
            if not ended:
                items = getattr(self, field)
                if not isinstance(items, BoundedList):
                    items = BoundedList(limit)
                    setattr(self, field, items)
                items.append(item)
        if ended:
            logger.warning("Tried calling %s on an ended span.", operation)

    def start(
        self,
        start_time: int | None = None,
        parent_context: context_api.Context | None = None,
    ) -> None:
        if self._start_time is not None:
            logger.warning("Calling start() on a started span.")
            return
        self._start_time = start_time if start_time is not None else time_ns()
        self._span_processor.on_start(self, parent_context=parent_context)

    def end(self, end_time: int | None = None) -> None:
        with self._lock:
            if self._start_time is None:
                raise RuntimeError("Calling end() on a not started span.")
            if self._end_time is not None:
                logger.warning("Calling end() on an ended span.")
                return
            self._end_time = end_time if end_time is not None else time_ns()
            self._table._immutable = True
        if self._record_end_metrics:
            self._record_end_metrics()
        self._span_processor._on_ending(self)
        # Ended, this span is as read-only as the SDK's copy would be (which shares its
        # attributes and events anyway).
        self._span_processor.on_end(self)


class _ActiveSpan:
    """``tracer.start_as_current_span(...)``: ``use_span(start_span(...), end_on_exit=...)`` as
    one class-based context manager. Usable as a decorator too, as the SDK's is."""

    __slots__ = ("_arguments", "_end_on_exit", "_span", "_token", "_tracer")

    def __init__(self, tracer: LightTracer, arguments: dict[str, Any], end_on_exit: bool) -> None:
        self._tracer = tracer
        self._arguments = arguments
        self._end_on_exit = end_on_exit
        self._span: trace_api.Span = trace_api.INVALID_SPAN
        self._token: object = None

    def __enter__(self) -> trace_api.Span:
        span = self._tracer.start_span(**self._arguments)
        self._span = span
        self._token = context_api.attach(trace_api.set_span_in_context(span))
        return span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            context_api.detach(self._token)  # type: ignore[arg-type]
            record_error(
                span,
                exc,
                record_exception=self._arguments["record_exception"],
                set_status=self._arguments["set_status_on_exception"],
            )
        finally:
            if self._end_on_exit:
                span.end()

    def __call__(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def traced(*args: Any, **kwargs: Any) -> Any:
            with _ActiveSpan(self._tracer, self._arguments, self._end_on_exit):
                return function(*args, **kwargs)

        return traced


class LightTracer(Tracer):
    """The SDK's ``Tracer`` whose recorded spans are ``LightSpan``."""

    def _follows_sampled_local_parent(self, parent: SpanContext) -> bool:
        """Whether the sampler is ParentBased (its own should_sample) with ALWAYS_ON for a
        sampled local parent, and ``parent`` is one (links do not change that answer)."""
        sampler = self.sampler
        return (
            not parent.is_remote
            and parent.trace_flags.sampled
            and type(sampler).should_sample is ParentBased.should_sample
            and sampler._local_parent_sampled is ALWAYS_ON  # type: ignore[attr-defined]
        )

    def start_as_current_span(  # type: ignore[override]
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> Iterator[trace_api.Span]:
        arguments = {
            "name": name,
            "context": context,
            "kind": kind,
            "attributes": attributes,
            "links": links,
            "start_time": start_time,
            "record_exception": record_exception,
            "set_status_on_exception": set_status_on_exception,
        }
        return _ActiveSpan(self, arguments, end_on_exit)  # type: ignore[return-value]

    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[trace_api.Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace_api.Span:
        # Tracer.start_span (opentelemetry-sdk 1.45) with LightSpan in place of _Span.
        links = links or ()
        parent_span_context = trace_api.get_current_span(context).get_span_context()
        if parent_span_context is not None and not isinstance(parent_span_context, SpanContext):
            raise TypeError("parent_span_context must be a SpanContext or None.")
        if not self._is_enabled():
            return trace_api.NonRecordingSpan(context=parent_span_context)

        parent: SpanContext | None = parent_span_context
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = self.id_generator.generate_trace_id()
        else:
            trace_id = parent.trace_id

        if parent is not None and self._follows_sampled_local_parent(parent):
            # The default sampler's answer for a child of a sampled span of this process,
            # without building it: ParentBased's local_parent_sampled is ALWAYS_ON, which
            # records and samples, keeps the attributes and the parent's trace state.
            decision = Decision.RECORD_AND_SAMPLE
            sampled_attributes: types.Attributes = attributes
            trace_state: TraceState | None = parent.trace_state
        else:
            sampling_result = self.sampler.should_sample(
                context, trace_id, name, kind, attributes, links
            )
            decision = sampling_result.decision
            sampled_attributes = sampling_result.attributes
            trace_state = sampling_result.trace_state
        trace_flags = _SAMPLED if decision.is_sampled() else _NOT_SAMPLED
        if parent is None:
            random_trace_id = self.id_generator.is_trace_id_random()
        else:
            random_trace_id = parent.trace_flags.random_trace_id
        if random_trace_id:
            trace_flags = _WITH_RANDOM_ID[trace_flags]

        span_context = SpanContext(
            trace_id,
            self.id_generator.generate_span_id(),
            is_remote=False,
            trace_flags=trace_flags,
            trace_state=trace_state,
        )
        record_end_metrics = self._tracer_metrics.start_span(parent, decision)
        if not decision.is_recording():
            return trace_api.NonRecordingSpan(context=span_context)
        span = LightSpan(
            self,
            name,
            span_context,
            parent,
            sampled_attributes,
            kind,
            links,
            record_exception,
            set_status_on_exception,
            None if record_end_metrics is _no_metrics else record_end_metrics,
        )
        span.start(start_time=start_time, parent_context=context)
        return span


# Hooks whose body is ``pass`` in opentelemetry-sdk 1.45: the SpanProcessor defaults and the two
# the batch and simple processors leave empty. Calling them does nothing but cost a call each.
_NO_OP_HOOKS = frozenset(
    {
        SpanProcessor.on_start,
        SpanProcessor._on_ending,
        SpanProcessor.on_end,
        BatchSpanProcessor.on_start,
        BatchSpanProcessor._on_ending,
        SimpleSpanProcessor.on_start,
        SimpleSpanProcessor._on_ending,
    }
)


class _FanOutProcessor(SynchronousMultiSpanProcessor):
    """``SynchronousMultiSpanProcessor`` that calls, per hook, only the processors whose hook
    does something (in registration order, as the parent); shutdown and flush are the parent's."""

    def __init__(self) -> None:
        super().__init__()
        self._starting: tuple[SpanProcessor, ...] = ()
        self._ending: tuple[SpanProcessor, ...] = ()
        self._ended: tuple[SpanProcessor, ...] = ()

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        with self._lock:
            self._span_processors += (span_processor,)
            hooks = type(span_processor)
            if hooks.on_start not in _NO_OP_HOOKS:
                self._starting += (span_processor,)
            if hooks._on_ending not in _NO_OP_HOOKS:
                self._ending += (span_processor,)
            if hooks.on_end not in _NO_OP_HOOKS:
                self._ended += (span_processor,)

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        for processor in self._starting:
            processor.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        for processor in self._ending:
            processor._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        for processor in self._ended:
            processor.on_end(span)


class LightTracerProvider(TracerProvider):
    """The SDK's ``TracerProvider`` whose tracers are ``LightTracer``, with span processors
    called through ``_FanOutProcessor``."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("active_span_processor", _FanOutProcessor())
        super().__init__(**kwargs)

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: types.Attributes = None,
    ) -> trace_api.Tracer:
        # TracerProvider.get_tracer (opentelemetry-sdk 1.45) with LightTracer in place of Tracer.
        if self._disabled:
            return NoOpTracer()
        if not instrumenting_module_name:
            instrumenting_module_name = ""
            logger.error("get_tracer called with missing module name.")
        if instrumenting_library_version is None:
            instrumenting_library_version = ""
        # As the parent: the deprecated InstrumentationInfo is still built for old readers.
        filterwarnings(
            "ignore",
            message=r"You should use InstrumentationScope. Deprecated since version 1.11.1.",
            category=DeprecationWarning,
            module=__name__,
        )
        instrumentation_scope = InstrumentationScope(
            instrumenting_module_name, instrumenting_library_version, schema_url, attributes
        )
        with self._tracers_lock:
            cached = self._tracers.get(instrumentation_scope)
            if cached is not None:
                return cached
            tracer = LightTracer(
                self.sampler,
                self.resource,
                self._active_span_processor,
                self.id_generator,
                InstrumentationInfo(
                    instrumenting_module_name, instrumenting_library_version, schema_url
                ),
                self._span_limits,
                instrumentation_scope,
                meter_provider=self._meter_provider,
                _tracer_config=self._apply_tracer_configurator(instrumentation_scope),
            )
            self._tracers[instrumentation_scope] = tracer
        return tracer
