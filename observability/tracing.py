"""OpenTelemetry tracing with the official packages: one set-up per process, and the helpers
application code calls.

``configure_tracing(component=...)`` runs once per process, after any fork: from settings/wsgi.py
(gunicorn imports it in each worker) and from Celery's ``worker_process_init`` (settings/
celery_app.py). Everything comes from the standard ``OTEL_*`` variables (docs/observability.md):

* off when ``OTEL_SDK_DISABLED=true``, when ``OTEL_TRACES_EXPORTER=none``, or when no OTLP
  endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``), so
  a developer without a collector exports nothing and pays nothing;
* the SDK's TracerProvider and BatchSpanProcessor (``OTEL_BSP_*``) with the official OTLP
  exporter, HTTP/protobuf by default, gRPC with ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL=grpc``;
* the sampler the SDK reads from ``OTEL_TRACES_SAMPLER`` / ``OTEL_TRACES_SAMPLER_ARG``, wrapped so
  that a CLIENT span with no parent (a query or Redis command outside any request or task) starts
  no trace of its own;
* opentelemetry-instrumentation-django (its middleware right after tenant routing),
  -psycopg, -redis, -celery and -requests.

When a tracer provider is already installed (the process runs under ``opentelemetry-instrument``,
which configured the SDK and instrumented the libraries itself), the set-up steps aside and only
turns on Verdant's own tags (observability/middleware.py's RequestSpanMiddleware, the task's
tenant).

Disabled means free: nothing is instrumented, no provider is installed (the API's no-op proxy
stays), no exporter thread starts, and every helper below returns after one boolean check.

Later code adds its own facts to the current span with ``set_span_attributes`` (sync row counts,
SMS gateway outcomes) and opens its own spans with ``start_span``; both are no-ops when off.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.functional import SimpleLazyObject
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, format_span_id, format_trace_id

if TYPE_CHECKING:
    from django.http import HttpRequest
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Link, TraceState
    from opentelemetry.util.types import Attributes

# Attribute names (OpenTelemetry semantic conventions where one exists).
TENANT_ID = "tenant.id"
ENDUSER_ID = "enduser.id"
ENDUSER_ROLE = "enduser.role"
REQUEST_ID = "verdant.request_id"
TASK_TENANT_HEADER = "_schema_name"  # where tenant-schemas-celery puts the enqueuing schema

DEFAULT_PROTOCOL = "http/protobuf"
TENANT_ROUTING_MIDDLEWARE = "tenants.middleware.TenantRoutingMiddleware"
# Probes poll every few seconds; a trace per probe would drown the real traffic. (They are
# answered by apikit.health.HealthCheckMiddleware before the instrumentation's middleware anyway; this keeps
# them untraced if an operator moves it with OTEL_PYTHON_DJANGO_MIDDLEWARE_POSITION.)
DEFAULT_EXCLUDED_URLS = "healthz,readyz"
# Provisioning replays a whole schema as one statement; an attribute stays readable when cut.
DEFAULT_ATTRIBUTE_LENGTH = 4096
# URL attributes the Django and WSGI instrumentations set (old and new HTTP semantic
# conventions); query strings can hold search terms (names, phone numbers).
URL_ATTRIBUTES = ("http.target", "http.url", "url.full")
QUERY_ATTRIBUTE = "url.query"
REDACTED_QUERY = "[redacted]"

_TRUE = {"1", "true", "yes", "on"}


@dataclass
class _TracingState:
    enabled: bool = False
    # The provider this module installed (None under opentelemetry-instrument: not ours to stop).
    provider: TracerProvider | None = None


_state = _TracingState()


def tracing_enabled() -> bool:
    """Whether this process traces (``configure_tracing`` installed a provider or found one)."""
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
    """Install the SDK's tracer provider and the official instrumentations of Django, psycopg,
    Redis, Celery and requests.

    ``component`` ("web" or "worker") names the default service (``verdant-web``,
    ``verdant-worker``) when ``OTEL_SERVICE_NAME`` is unset. Idempotent; returns whether tracing
    is on. Call it after forking: the batch processor's export thread does not survive a fork.
    """
    if _state.enabled:
        return True
    installed = trace.get_tracer_provider()
    if not isinstance(installed, trace.ProxyTracerProvider):
        # Someone configured the SDK first (opentelemetry-instrument): theirs stays, with the
        # instrumentation they chose; only our own tagging is switched on.
        _state.enabled = not isinstance(installed, trace.NoOpTracerProvider)
        return _state.enabled
    if not tracing_requested():
        return False

    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = SDKTracerProvider(
        resource=service_resource(component=component),
        sampler=NoOrphanClientSpans(environment_sampler()),
        span_limits=span_limits(),
    )
    provider.add_span_processor(BatchSpanProcessor(span_exporter()))
    trace.set_tracer_provider(provider)
    _instrument_libraries(provider)
    _state.provider = provider
    _state.enabled = True
    return True


def shutdown_tracing() -> None:
    """Flush and stop our exporter (worker shutdown); instrumentation stays in place. A provider
    installed by opentelemetry-instrument shuts itself down at exit."""
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


def environment_sampler() -> Sampler:
    """The sampler the SDK itself builds from ``OTEL_TRACES_SAMPLER`` / ``_ARG`` (its default:
    parent-based always-on), read from a provider that is never installed."""
    from opentelemetry.sdk.trace import TracerProvider as SDKTracerProvider

    return SDKTracerProvider(shutdown_on_exit=False).sampler


def span_limits() -> Any:
    """The SDK's limits from ``OTEL_*_LIMIT``; attribute values (SQL statements) are cut at
    DEFAULT_ATTRIBUTE_LENGTH characters unless a length limit is set."""
    from opentelemetry.sdk.trace import SpanLimits

    length_set = any(
        os.environ.get(name, "").strip()
        for name in ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
    )
    return SpanLimits(max_span_attribute_length=None if length_set else DEFAULT_ATTRIBUTE_LENGTH)


class NoOrphanClientSpans(Sampler):
    """Drops a CLIENT span that has no parent, and defers to ``delegate`` for everything else.

    psycopg, Redis and requests spans are CLIENT spans: inside a request or task they are
    children of its span; outside (start-up, a management command, tenant-schemas-celery's
    tenant lookup before the task span starts, a worker polling the broker) each would be a
    trace of its own, one per statement or command.
    """

    def __init__(self, delegate: Sampler) -> None:
        self.delegate = delegate

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if (
            kind is SpanKind.CLIENT
            and not trace.get_current_span(parent_context).get_span_context().is_valid
        ):
            return SamplingResult(Decision.DROP)
        return self.delegate.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return f"NoOrphanClientSpans{{{self.delegate.get_description()}}}"


def span_exporter() -> SpanExporter:
    """The official OTLP exporter for ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL``; it reads
    endpoint, headers, timeout and compression from the environment itself."""
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "").strip()
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "").strip()
        or DEFAULT_PROTOCOL
    ).lower()
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HTTPSpanExporter,
        )

        return HTTPSpanExporter()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GRPCSpanExporter,
        )

        return GRPCSpanExporter()
    raise ImproperlyConfigured(
        f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r} is not supported; use http/protobuf or grpc."
    )


def django_middleware_position() -> int:
    """Right after tenant routing: earlier, the instrumentation's first act
    (``request.build_absolute_uri()``) raises for hosts outside ALLOWED_HOSTS, so /healthz probed
    by pod IP would answer 400. ``OTEL_PYTHON_DJANGO_MIDDLEWARE_POSITION`` wins over this (the
    instrumentor reads it)."""
    from django.conf import settings

    middleware = list(settings.MIDDLEWARE)
    if TENANT_ROUTING_MIDDLEWARE not in middleware:
        raise ImproperlyConfigured(f"{TENANT_ROUTING_MIDDLEWARE} is missing from MIDDLEWARE.")
    return middleware.index(TENANT_ROUTING_MIDDLEWARE) + 1


def excluded_urls(environ: Mapping[str, str] | None = None) -> str:
    """``OTEL_PYTHON_DJANGO_EXCLUDED_URLS`` (or ``OTEL_PYTHON_EXCLUDED_URLS``), else the probes."""
    env = os.environ if environ is None else environ
    for name in ("OTEL_PYTHON_DJANGO_EXCLUDED_URLS", "OTEL_PYTHON_EXCLUDED_URLS"):
        value = env.get(name, "").strip()
        if value:
            return value
    return DEFAULT_EXCLUDED_URLS


def _instrument_libraries(provider: TracerProvider) -> None:
    from opentelemetry.instrumentation.celery import CeleryInstrumentor
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    # Before the WSGI handler loads the middleware: the instrumentor adds its own to
    # settings.MIDDLEWARE (its documented behaviour).
    DjangoInstrumentor().instrument(
        tracer_provider=provider,
        middleware_position=django_middleware_position(),
        excluded_urls=excluded_urls(),
    )
    # Wraps psycopg.connect, keeping the cursor factory Django passes as the base of its own; the
    # statement with its placeholders, never the parameters (capture_parameters stays off: they
    # are patient data).
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    # Command names with their arguments as "?" (keys and values hold ids and message bodies).
    RedisInstrumentor().instrument(tracer_provider=provider)
    # Producer side injects the trace context into the message headers; the worker side opens
    # the task span as a child of it.
    CeleryInstrumentor().instrument(tracer_provider=provider)
    # Outgoing HTTP (the SMS gateway). The OTLP exporter's own requests are suppressed by the SDK.
    RequestsInstrumentor().instrument(
        tracer_provider=provider, response_hook=outgoing_response_hook
    )


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


def tag_request_span(span: trace.Span, request: HttpRequest) -> None:
    """The request span's Verdant facts, set on the way out (RequestSpanMiddleware): who asked,
    in which tenant, under which request id; and the URL attributes without their query
    strings. The instrumentation's middleware sets the URL attributes again after the span
    starts, so only code that runs after it (this, or a response hook) can cut them."""
    context = span.get_span_context()
    if context.is_valid:
        # The request log line is written by an outer middleware, after this span has ended.
        request.trace_ids = (  # type: ignore[attr-defined]
            format_trace_id(context.trace_id),
            format_span_id(context.span_id),
        )
    if not span.is_recording():
        return
    tenant = getattr(request, "tenant", None)
    attributes: dict[str, str] = {
        TENANT_ID: str(tenant.schema_name) if tenant is not None else "public"
    }
    user = authenticated_user(request)
    if user is not None:
        attributes[ENDUSER_ID] = str(user.pk)
        role = str(getattr(user, "role", "") or "")
        if role:
            attributes[ENDUSER_ROLE] = role
    request_id = getattr(request, "request_id", "")
    if request_id:
        attributes[REQUEST_ID] = str(request_id)
    attributes.update(query_free_url_attributes(span))
    span.set_attributes(attributes)


def query_free_url_attributes(span: trace.Span) -> dict[str, str]:
    """Replacements for the span's URL attributes that carry a query string (the SDK span's
    read-only ``attributes``; an API span without them needs none)."""
    recorded = getattr(span, "attributes", None) or {}
    replacements: dict[str, str] = {}
    for key in URL_ATTRIBUTES:
        value = recorded.get(key)
        if isinstance(value, str) and ("?" in value or "#" in value):
            replacements[key] = without_query(value)
    if recorded.get(QUERY_ATTRIBUTE):
        replacements[QUERY_ATTRIBUTE] = REDACTED_QUERY
    return replacements


def outgoing_response_hook(span: trace.Span, request: Any, response: Any) -> None:
    """RequestsInstrumentor's response hook: outgoing URLs (the SMS gateway's) lose their query
    strings too; the gateway gets phone numbers in the body, but a URL is no place for them."""
    if span.is_recording():
        span.set_attributes(query_free_url_attributes(span))


def authenticated_user(request: HttpRequest) -> Any:
    """The user DRF authenticated for this request, or None; never evaluates the lazy user.

    DRF's ``Request.user`` setter stores the user it authenticated on the Django request as a
    plain object. What AuthenticationMiddleware put there is a ``SimpleLazyObject`` (checked by
    type, which does not evaluate it): then nobody authenticated through DRF, and resolving it
    would cost a session lookup.
    """
    user = vars(request).get("user")
    if user is None or isinstance(user, SimpleLazyObject):
        return None
    if not getattr(user, "is_authenticated", False):
        return None
    return user


def without_query(url: str) -> str:
    """``url`` (absolute, or a path like ``/x?y``) without its query string and fragment."""
    if url.startswith("/"):
        return url.split("?", 1)[0].split("#", 1)[0]
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


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
