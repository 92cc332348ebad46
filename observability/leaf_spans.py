"""A CLIENT span around a call that starts no spans of its own (an SQL statement, a Redis
command): started and ended, never made the current span.

``start_as_current_span`` copies the context, attaches it and detaches it again so that spans
started inside become children; a statement or a Redis command starts none, so that work is
skipped here. Exceptions are recorded as ``start_as_current_span`` records them: an
``Exception`` (not a ``BaseException`` such as ``GeneratorExit``) becomes an exception event
and an ERROR status ``"<type>: <message>"``, and propagates. Log lines written during the call
carry the enclosing span's id.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode


def record_error(
    span: trace.Span,
    error: BaseException | None,
    *,
    record_exception: bool = True,
    set_status: bool = True,
) -> None:
    """What ``use_span`` does with an exception leaving a span's block: only ``Exception``
    subclasses are errors (not ``GeneratorExit`` or ``SystemExit``), recorded as an exception
    event and an ERROR status ``"<type>: <message>"`` while the span records."""
    if not isinstance(error, Exception) or not span.is_recording():
        return
    if record_exception:
        span.record_exception(error)
    if set_status:
        span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


class LeafSpan:
    __slots__ = ("_span",)

    def __init__(self, tracer: trace.Tracer, name: str, attributes: Mapping[str, Any]) -> None:
        self._span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def __enter__(self) -> trace.Span:
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            record_error(self._span, exc)
        finally:
            self._span.end()
