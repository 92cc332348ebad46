"""OpenTelemetry tracing: one set-up per process, and the helpers application code calls.

``configure_tracing(component=...)`` runs once per process, after any fork: from settings/wsgi.py
(gunicorn imports it in each worker) and from Celery's ``worker_process_init`` (settings/
celery_app.py). Everything comes from the standard ``OTEL_*`` variables (docs/observability.md):

* off when ``OTEL_SDK_DISABLED=true``, when ``OTEL_TRACES_EXPORTER=none``, or when no OTLP
  endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), so
  a developer without a collector exports nothing and pays nothing;
* OTLP over HTTP/protobuf by default, gRPC with ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL=grpc``;
  the exporters read endpoint, headers, timeout and compression themselves;
* the sampler from ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG`` (TracerProvider's own
  default: parent-based always-on), batching from ``OTEL_BSP_*``.

Disabled means free: nothing is instrumented, no provider is installed (the API's no-op proxy
stays), no exporter thread starts, and every helper below returns after one boolean check.

Later code adds its own facts to the current span with ``set_span_attributes`` (sync row counts,
SMS gateway outcomes) and opens its own spans with ``start_span``; both are no-ops when off.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import SimpleLazyObject, empty
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import format_span_id, format_trace_id

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse
    from opentelemetry.sdk.trace import Span, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

# Attribute names (OpenTelemetry semantic conventions where one exists).
TENANT_ID = "tenant.id"
ENDUSER_ID = "enduser.id"
ENDUSER_ROLE = "enduser.role"
REQUEST_ID = "verdant.request_id"
TASK_TENANT_HEADER = "_schema_name"  # where tenant-schemas-celery puts the enqueuing schema

DEFAULT_PROTOCOL = "http/protobuf"
TENANT_ROUTING_MIDDLEWARE = "tenants.middleware.TenantRoutingMiddleware"
# Probes poll every few seconds; a trace per probe would drown the real traffic.
DEFAULT_EXCLUDED_URLS = "healthz,readyz"
# Span attributes that may carry a full URL; their query strings can hold search terms (names,
# phone numbers), so they are cut before any exporter sees them.
_URL_ATTRIBUTES = ("http.url", "url.full", "http.target")
_QUERY_ATTRIBUTES = ("url.query",)
_SCRUBBED_ATTRIBUTES = frozenset(_URL_ATTRIBUTES + _QUERY_ATTRIBUTES)

_TRUE = {"1", "true", "yes", "on"}


@dataclass
class _TracingState:
    provider: TracerProvider | None = None

    @property
    def enabled(self) -> bool:
        return self.provider is not None


_state = _TracingState()


def tracing_enabled() -> bool:
    """Whether this process exports traces (``configure_tracing`` installed a provider)."""
    return _state.enabled


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` variables ask for tracing (see the module docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() in _TRUE:
        return False
    if env.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return False
    return bool(
        env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    )


def configure_tracing(*, component: str) -> bool:
    """Install the tracer provider and instrument Django requests and queries, Celery, Redis
    and requests.

    ``component`` ("web" or "worker") names the default service (``verdant-web``,
    ``verdant-worker``) when ``OTEL_SERVICE_NAME`` is unset. Idempotent; returns whether tracing
    is on. Call it after forking: the batch processor's export thread does not survive a fork.
    """
    if _state.enabled:
        return True
    if not tracing_requested():
        return False

    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from observability.light_spans import LightTracerProvider

    provider = LightTracerProvider(resource=service_resource(component=component))
    provider.add_span_processor(QueryStringScrubber())
    provider.add_span_processor(BatchSpanProcessor(span_exporter()))
    trace.set_tracer_provider(provider)
    _instrument_libraries(provider)
    _state.provider = provider
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporter (worker shutdown); instrumentation stays in place."""
    if _state.provider is not None:
        _state.provider.shutdown()


def service_resource(*, component: str) -> Any:
    """service.name / service.version / deployment.environment, overridable through
    ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (those win over these defaults)."""
    from django.conf import settings
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    defaults = Resource.create(
        {
            "service.name": f"verdant-{component}",
            "service.namespace": "verdant",
            "service.version": _service_version(),
            "deployment.environment": str(settings.DEPLOYMENT_ENVIRONMENT),
            "verdant.component": component,
        }
    )
    resource = defaults.merge(OTELResourceDetector().detect())
    service_name = os.environ.get("OTEL_SERVICE_NAME", "").strip()
    if service_name:
        resource = resource.merge(Resource({"service.name": service_name}))
    return resource


def _service_version() -> str:
    from django.conf import settings

    configured = str(getattr(settings, "SERVICE_VERSION", "") or "")
    if configured:
        return configured
    try:
        return importlib.metadata.version("verdant")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def span_exporter() -> SpanExporter:
    """The OTLP exporter for ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or DEFAULT_PROTOCOL
    ).lower()
    if protocol == "http/protobuf":
        # The official exporter, with the request written directly (observability/
        # otlp_exporter.py): the same bytes for a third of the encoding CPU.
        from observability.otlp_exporter import DirectEncodingSpanExporter

        return DirectEncodingSpanExporter()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GRPCSpanExporter,
        )

        return GRPCSpanExporter()
    raise ImproperlyConfigured(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; use http/protobuf or grpc."
    )


def _instrument_libraries(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    from observability import query_spans, redis_spans

    _install_server_spans()
    # A span per statement (query text with placeholders, never the parameters: patient data).
    query_spans.install()
    # A span per Redis command or pipeline (command names, never keys or values).
    redis_spans.install()
    # Producer side injects the trace context into the message headers; the worker side opens
    # the task span as a child of it.
    CeleryInstrumentor().instrument(tracer_provider=provider)
    # Outgoing HTTP (the SMS gateway). The OTLP exporter's own requests are suppressed by the SDK.
    RequestsInstrumentor().instrument(tracer_provider=provider)


def _install_server_spans() -> None:
    """Put the server-span middleware (observability/server_spans.py) into settings.MIDDLEWARE,
    before the WSGI handler loads it: right after tenant routing, so it wraps auth and every view.
    Not earlier: it reads request.get_host(), which raises for hosts outside ALLOWED_HOSTS
    (kubelet probes by pod IP, unknown hosts), and health probes and the tenant_not_found
    envelope must answer exactly as they do without tracing."""
    from django.conf import settings

    from observability.server_spans import SERVER_SPANS_MIDDLEWARE, set_excluded_paths

    set_excluded_paths(
        os.environ.get("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", DEFAULT_EXCLUDED_URLS).split(",")
    )
    middleware = list(settings.MIDDLEWARE)
    if SERVER_SPANS_MIDDLEWARE in middleware:
        return
    position = (
        middleware.index(TENANT_ROUTING_MIDDLEWARE) + 1
        if TENANT_ROUTING_MIDDLEWARE in middleware
        else 0
    )
    middleware.insert(position, SERVER_SPANS_MIDDLEWARE)
    settings.MIDDLEWARE = middleware


# --- attributes -------------------------------------------------------------------------------------


def set_span_attributes(attributes: Mapping[str, Any] | None = None, /, **named: Any) -> None:
    """Add attributes to the current span; a no-op when tracing is off or nothing records.

    Dotted names go in the mapping (``set_span_attributes({"sync.rows.pushed": 120})``), plain
    ones as keywords. ``None`` values are skipped (OpenTelemetry rejects them).
    """
    if not _state.enabled:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    merged = {**(attributes or {}), **named}
    span.set_attributes({key: value for key, value in merged.items() if value is not None})


@contextlib.contextmanager
def start_span(name: str, attributes: Mapping[str, Any] | None = None) -> Iterator[None]:
    """A child span of the current one around a block (``with start_span("sync.push"):``);
    exceptions are recorded on it. Costs nothing when tracing is off."""
    if not _state.enabled:
        yield
        return
    tracer = trace.get_tracer("verdant")
    with tracer.start_as_current_span(name, attributes=dict(attributes or {})):
        yield


def current_trace_id() -> str:
    """The current trace id as 32 hex digits, or "" when there is none (tracing off)."""
    if not _state.enabled:
        return ""
    context = trace.get_current_span().get_span_context()
    return format_trace_id(context.trace_id) if context.is_valid else ""


def recording_trace_id() -> str:
    """The trace id when the current span is recording (so the trace will reach the backend);
    "" otherwise. Error envelopes carry it so a user's report finds the trace."""
    if not _state.enabled:
        return ""
    span = trace.get_current_span()
    if not span.is_recording():
        return ""
    return format_trace_id(span.get_span_context().trace_id)


def current_span_ids() -> tuple[str, str]:
    """(trace id, span id) of the current span, ("", "") when there is none."""
    if not _state.enabled:
        return "", ""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return format_trace_id(context.trace_id), format_span_id(context.span_id)


def record_exception(error: BaseException) -> None:
    """Record ``error`` on the current span and mark the span failed (no-op when off)."""
    if not _state.enabled:
        return
    span = trace.get_current_span()
    if span.is_recording():
        span.record_exception(error)
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(error).__name__))


def tag_request_span(
    span: Span,
    request: HttpRequest,
    response: HttpResponse,
    *,
    attributes: dict[str, str | int] | None = None,
) -> None:
    """The server span's last facts (observability/server_spans.py): who asked, in which tenant;
    set with the caller's ``attributes`` (route, status) in one call."""
    if not span.is_recording():
        return
    attributes = dict(attributes or {})
    tenant = getattr(request, "tenant", None)
    attributes[TENANT_ID] = str(tenant.schema_name) if tenant is not None else "public"
    user = resolved_user(request)
    if user is not None:
        attributes[ENDUSER_ID] = str(user.pk)
        role = str(getattr(user, "role", "") or "")
        if role:
            attributes[ENDUSER_ROLE] = role
    request_id = getattr(request, "request_id", "")
    if request_id:
        attributes[REQUEST_ID] = str(request_id)
    span.set_attributes(attributes)
    # The request log line is written by an outer middleware, after this span has ended.
    context = span.get_span_context()
    request.trace_ids = (  # type: ignore[attr-defined]
        format_trace_id(context.trace_id),
        format_span_id(context.span_id),
    )


def resolved_user(request: HttpRequest) -> Any:
    """The authenticated user already known for this request, or None. Never triggers the
    lazy session lookup: an unresolved ``request.user`` means nobody authenticated."""
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        wrapped = user._wrapped
        if wrapped is empty:
            return None
        user = wrapped
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user


def task_span_tag_tenant(task: Any) -> None:
    """Celery ``task_prerun`` (connected after the Celery instrumentation, so the task span is
    current): the task span carries the tenant that enqueued the task."""
    if not _state.enabled:
        return
    set_span_attributes({TENANT_ID: task_tenant(task) or "public"})


def task_tenant(task: Any) -> str:
    """The schema that enqueued ``task`` (tenant-schemas-celery's header), or ""."""
    request = getattr(task, "request", None)
    if request is None:
        return ""
    headers = getattr(request, "headers", None) or {}
    schema = headers.get(TASK_TENANT_HEADER) if isinstance(headers, Mapping) else None
    if not schema:
        schema = getattr(request, TASK_TENANT_HEADER, None)
    return str(schema or "")


# --- span processors ----------------------------------------------------------------------------------


class QueryStringScrubber(SpanProcessor):
    """Drops query strings from URL attributes when a span starts. Search terms travel in
    query strings (``?search=<name or phone>``): they must not reach the tracing backend."""

    def on_start(self, span: Span, parent_context: Any = None) -> None:
        attributes = span.attributes or {}
        if _SCRUBBED_ATTRIBUTES.isdisjoint(attributes):  # most spans: one pass over the keys
            return
        for key in _URL_ATTRIBUTES:
            value = attributes.get(key)
            if isinstance(value, str) and "?" in value:
                span.set_attribute(key, _without_query(value))
        for key in _QUERY_ATTRIBUTES:
            if attributes.get(key):
                span.set_attribute(key, "[redacted]")


def _without_query(url: str) -> str:
    if url.startswith("/"):
        return url.split("?", 1)[0]
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="", fragment=""))
