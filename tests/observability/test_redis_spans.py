"""Redis spans (observability/redis_spans.py): one CLIENT span per command or pipeline under a
recording span, none otherwise; command names but never keys or values; failures recorded; a
lost WATCH leaves the status unset. Against the real Redis of this run."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode
from redis.client import Pipeline, Redis

from observability import redis_spans
from observability.light_spans import LightTracerProvider

SECRET_PHONE = "+4915199988877"


@pytest.fixture
def client() -> Iterator[Redis]:
    connection = redis.Redis.from_url(str(settings.REDIS_URL))
    yield connection
    connection.close()


@pytest.fixture(params=["sdk", "light"])
def recorded(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[trace.Tracer, InMemorySpanExporter]]:
    """The wrappers installed for this test only (the originals come back afterwards), spans
    going to a private provider: the SDK's and ours, the same assertions for both."""
    for cls, name in (
        (Redis, "execute_command"),
        (Pipeline, "immediate_execute_command"),
        (Pipeline, "execute"),
    ):
        monkeypatch.setattr(cls, name, cls.__dict__[name])
    monkeypatch.setattr(redis_spans, "_installed", False)
    redis_spans.install()
    exporter = InMemorySpanExporter()
    provider = TracerProvider() if request.param == "sdk" else LightTracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(redis_spans, "_tracer", provider.get_tracer("verdant.redis"))
    yield provider.get_tracer("test"), exporter
    provider.shutdown()


def _redis_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name != "request"]


def _key() -> str:
    return f"verdant-test:redis-spans:{uuid.uuid4().hex}"


def test_a_command_under_a_recording_span_gets_a_client_child_span(
    recorded: tuple[trace.Tracer, InMemorySpanExporter], client: Redis
) -> None:
    tracer, exporter = recorded
    key = _key()
    with tracer.start_as_current_span("request") as parent:
        client.set(key, SECRET_PHONE, ex=60)
    (span,) = _redis_spans(exporter)
    assert span.name == "SET"
    assert span.kind == SpanKind.CLIENT
    assert span.parent is not None
    assert span.parent.span_id == parent.get_span_context().span_id
    attributes = dict(span.attributes or {})
    kwargs = client.connection_pool.connection_kwargs
    assert attributes == {
        "db.statement": "SET ? ? ? ?",
        "db.redis.args_length": 5,
        "db.system": "redis",
        "db.redis.database_index": kwargs.get("db") or 0,
        "net.peer.name": kwargs["host"],
        "net.peer.port": kwargs["port"],
        "net.transport": "ip_tcp",
    }
    assert SECRET_PHONE not in repr(attributes)
    assert key not in repr(attributes)
    client.delete(key)


def test_no_span_without_a_recording_parent(
    recorded: tuple[trace.Tracer, InMemorySpanExporter], client: Redis
) -> None:
    _, exporter = recorded
    client.ping()  # no current span at all: a worker polling its broker between tasks
    unsampled = TracerProvider(sampler=ParentBased(ALWAYS_OFF)).get_tracer("test")
    with unsampled.start_as_current_span("request"):
        client.ping()  # a sampled-out request
    assert exporter.get_finished_spans() == ()


def test_a_failing_command_records_the_error_and_still_raises(
    recorded: tuple[trace.Tracer, InMemorySpanExporter], client: Redis
) -> None:
    tracer, exporter = recorded
    with tracer.start_as_current_span("request"), pytest.raises(redis.ResponseError):
        client.execute_command("VERDANT.NO-SUCH-COMMAND", SECRET_PHONE)
    (span,) = _redis_spans(exporter)
    assert span.name == "VERDANT.NO-SUCH-COMMAND"
    assert span.status.status_code == StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]
    assert span.attributes is not None
    assert span.attributes["db.statement"] == "VERDANT.NO-SUCH-COMMAND ?"


def test_a_pipeline_is_one_span_naming_its_commands(
    recorded: tuple[trace.Tracer, InMemorySpanExporter], client: Redis
) -> None:
    tracer, exporter = recorded
    key = _key()
    with tracer.start_as_current_span("request"):
        pipe = client.pipeline(transaction=True)
        pipe.set(key, SECRET_PHONE, ex=60)
        pipe.get(key)
        assert pipe.execute() == [True, SECRET_PHONE.encode()]
    (span,) = _redis_spans(exporter)
    assert span.name == "SET GET"
    assert span.attributes is not None
    assert span.attributes["db.redis.pipeline_length"] == 2
    assert span.attributes["db.statement"] == "SET ? ? ? ?\nGET ?"
    assert SECRET_PHONE not in repr(dict(span.attributes))
    client.delete(key)


def test_a_lost_watch_leaves_the_status_unset_and_raises(
    recorded: tuple[trace.Tracer, InMemorySpanExporter], client: Redis
) -> None:
    tracer, exporter = recorded
    key = _key()
    client.set(key, "1", ex=60)
    with tracer.start_as_current_span("request"):
        pipe = client.pipeline(transaction=True)
        pipe.watch(key)
        client.set(key, "2", ex=60)  # another writer wins the optimistic lock
        pipe.multi()
        pipe.set(key, "3", ex=60)
        with pytest.raises(redis.WatchError):
            pipe.execute()
    watch, other_writer, transaction = _redis_spans(exporter)
    assert (watch.name, other_writer.name, transaction.name) == ("WATCH", "SET", "SET")
    assert transaction.attributes is not None
    assert transaction.attributes["db.redis.pipeline_length"] == 1
    assert transaction.status.status_code == StatusCode.UNSET
    assert transaction.events == ()
    assert client.get(key) == b"2"
    client.delete(key)


def test_install_is_idempotent(
    recorded: tuple[trace.Tracer, InMemorySpanExporter],
    client: Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracer, exporter = recorded
    private_tracer = redis_spans._tracer
    redis_spans.install()
    redis_spans.install()
    monkeypatch.setattr(redis_spans, "_tracer", private_tracer)
    for cls, name in (
        (Redis, "execute_command"),
        (Pipeline, "execute"),
        (Pipeline, "immediate_execute_command"),
    ):
        inner = getattr(cls.__dict__[name], "__wrapped__", None)
        assert inner is not None, f"{cls.__name__}.{name} is not wrapped"
        assert not hasattr(inner, "__wrapped__"), f"{cls.__name__}.{name} wrapped twice"
    with tracer.start_as_current_span("request"):
        client.ping()
    assert [s.name for s in _redis_spans(exporter)] == ["PING"]
