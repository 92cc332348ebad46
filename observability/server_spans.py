"""The server span of each request: our own middleware in place of opentelemetry-instrumentation-
django's.

The contrib middleware resolves the URL a second time to name the span, builds the full set of
old and new HTTP semantic-convention attributes from the WSGI environ and runs per-request hooks;
on a list request that was about as much CPU as the query spans together, and tracing's whole
budget is 10 % of a request. This one starts a SERVER span from the incoming ``traceparent``,
names it ``<METHOD> <route>`` once the URL resolver has matched, and sets the stable HTTP
attributes a backend groups by: method, scheme, host, path (never the query string: search terms
travel there), route, status, user agent; plus tenant and user (``tracing.tag_request_span``).

Installed by ``tracing.configure_tracing`` right after tenant routing, only when tracing is on.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from observability import tracing

SERVER_SPANS_MIDDLEWARE = "observability.server_spans.ServerSpanMiddleware"
_TRACER_NAME = "verdant.http"


class _MetaGetter(Getter[dict[str, Any]]):
    """Reads propagation headers (``traceparent``) from Django's ``request.META``."""

    def get(self, carrier: dict[str, Any], key: str) -> list[str] | None:
        meta_key = _META_KEYS.get(key)
        if meta_key is None:
            meta_key = _META_KEYS[key] = "HTTP_" + key.upper().replace("-", "_")
        value = carrier.get(meta_key)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: dict[str, Any]) -> list[str]:
        return [key[5:].lower().replace("_", "-") for key in carrier if key.startswith("HTTP_")]


# Propagation header name -> request.META key ("traceparent" -> "HTTP_TRACEPARENT"); the
# propagators ask for the same two or three names on every request.
_META_KEYS: dict[str, str] = {}
_GETTER = _MetaGetter()
_excluded: re.Pattern[str] | None = None


def set_excluded_paths(patterns: Iterable[str]) -> None:
    """Paths (regular expressions, searched) that get no span: health probes."""
    global _excluded  # set once at start-up, read per request
    cleaned = [pattern.strip() for pattern in patterns if pattern.strip()]
    _excluded = re.compile("|".join(cleaned)) if cleaned else None


class ServerSpanMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.tracer = trace.get_tracer(_TRACER_NAME)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _excluded is not None and _excluded.search(request.path):
            return self.get_response(request)
        meta = request.META
        parent = propagate.extract(meta, getter=_GETTER)
        attributes = {
            "http.request.method": request.method or "",
            "url.scheme": request.scheme or "http",
            "url.path": request.path,
            "server.address": request.get_host(),
        }
        user_agent = meta.get("HTTP_USER_AGENT")
        if user_agent:
            attributes["user_agent.original"] = user_agent
        span = self.tracer.start_span(
            request.method or "HTTP", context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            response = self.get_response(request)
            self._finish(span, request, response)
            return response
        except BaseException as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
        finally:
            otel_context.detach(token)
            span.end()

    def process_exception(self, request: HttpRequest, exception: Exception) -> None:
        """A view raised: Django turns it into a 500 response further in, so record it here."""
        span = trace.get_current_span()
        if span.is_recording():
            span.record_exception(exception)

    @staticmethod
    def _finish(span: Any, request: HttpRequest, response: HttpResponse) -> None:
        if not span.is_recording():
            return
        match = getattr(request, "resolver_match", None)
        route = getattr(match, "route", None)
        attributes: dict[str, str | int] = {}
        if route:
            attributes["http.route"] = route
            span.update_name(f"{request.method} {route}")
        status = response.status_code
        attributes["http.response.status_code"] = status
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        tracing.tag_request_span(span, request, response, attributes=attributes)
