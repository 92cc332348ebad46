"""Query spans (observability/query_spans.py): one CLIENT span per statement under a recording
span, none otherwise, the statement's text but never its parameters, failures recorded."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db import DatabaseError, connection, transaction
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode

from observability import query_spans

pytestmark = pytest.mark.django_db

SECRET_PHONE = "+4915199988877"


@pytest.fixture
def recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    """A private provider (the process-wide one stays the no-op proxy) and the wrapper on the
    test's connection."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(query_spans, "_tracer", provider.get_tracer("verdant.db"))
    with connection.execute_wrapper(query_spans.query_span):
        yield provider.get_tracer("test"), exporter
    provider.shutdown()


def _queries(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    """The test's statements (not django-tenants' ``SET search_path``, which gets its own)."""
    return [s for s in exporter.get_finished_spans() if s.name not in ("request", "SET")]


def test_a_statement_under_a_recording_span_gets_a_child_span(
    recorded: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = recorded
    with tracer.start_as_current_span("request") as parent, connection.cursor() as cursor:
        cursor.execute("SELECT %s::text", [SECRET_PHONE])
        assert cursor.fetchone() == (SECRET_PHONE,)
    (span,) = _queries(exporter)
    assert span.name == "SELECT"
    assert span.kind == SpanKind.CLIENT
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    assert span.attributes is not None
    assert span.attributes["db.system"] == "postgresql"
    assert span.attributes["db.name"] == connection.settings_dict["NAME"]
    assert span.attributes["db.statement"] == "SELECT %s::text"
    assert SECRET_PHONE not in repr(dict(span.attributes))


def test_no_span_without_a_recording_parent(
    recorded: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    _, exporter = recorded
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")  # no current span at all
    unsampled = TracerProvider(sampler=ParentBased(ALWAYS_OFF)).get_tracer("test")
    with unsampled.start_as_current_span("request"), connection.cursor() as cursor:
        cursor.execute("SELECT 2")  # a sampled-out request
    assert _queries(exporter) == []


def test_a_failing_statement_records_the_error_and_still_raises(
    recorded: tuple[trace.Tracer, InMemorySpanExporter],
) -> None:
    tracer, exporter = recorded
    with (
        tracer.start_as_current_span("request"),
        pytest.raises(DatabaseError),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT * FROM no_such_table_here")
    # atomic() adds SAVEPOINT / ROLLBACK TO SAVEPOINT statements of its own.
    (span,) = [s for s in _queries(exporter) if s.name == "SELECT"]
    assert span.status.status_code == StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_a_huge_statement_is_cut(recorded: tuple[trace.Tracer, InMemorySpanExporter]) -> None:
    tracer, exporter = recorded
    padding = " " * (query_spans.MAX_STATEMENT * 2)
    with tracer.start_as_current_span("request"), connection.cursor() as cursor:
        cursor.execute(f"SELECT 1{padding}")
    (span,) = _queries(exporter)
    assert span.attributes is not None
    statement = str(span.attributes["db.statement"])
    assert len(statement) == query_spans.MAX_STATEMENT + 1
    assert statement.startswith("SELECT 1")
    assert statement.endswith("…")
