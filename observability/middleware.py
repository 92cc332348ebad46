"""One log line per request, and the request span's Verdant tags.

RequestLogMiddleware comes right after the probes (apikit.health) in settings.MIDDLEWARE, ahead of
the OpenTelemetry instrumentation's (inserted right after tenant routing), so the request line
sees everything: the tenant routing chose, the request id
RequestGuardMiddleware assigned, the route the URL resolver matched, the final status and the
trace ids RequestSpanMiddleware left on the request.

RequestSpanMiddleware (below) sits right after tenant routing and tags the request's span.
"""

import logging
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from opentelemetry import trace

from observability.logs import REQUEST_LOGGER, bind_request
from observability.tracing import authenticated_user, tag_request_span, tracing_enabled

request_logger = logging.getLogger(REQUEST_LOGGER)

UNMATCHED_ROUTE = "<unmatched>"


class RequestLogMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        with bind_request(request):
            response = self.get_response(request)
            log_request(request, response, duration_seconds=time.perf_counter() - started)
        return response


def route_template(request: HttpRequest) -> str:
    """The matched URL pattern (``/api/<str:version>/users/<str:pk>/``), never the raw path:
    paths hold ids and the route groups requests for dashboards."""
    match = getattr(request, "resolver_match", None)
    route = getattr(match, "route", None)
    if not route:
        return UNMATCHED_ROUTE
    # Router (regex) routes carry their anchors: "users/$" reads better as "users/".
    return "/" + str(route).replace("^", "").replace("$", "")


def log_request(request: HttpRequest, response: HttpResponse, *, duration_seconds: float) -> None:
    """One line per request: method, route template, status, duration, the user's id."""
    if not request_logger.isEnabledFor(logging.INFO):
        return
    route = route_template(request)
    user = authenticated_user(request)
    duration_ms = round(duration_seconds * 1000, 2)
    request_logger.info(
        "%s %s %s",
        request.method,
        route,
        response.status_code,
        extra={
            "method": request.method,
            "route": route,
            "status": response.status_code,
            "duration_ms": duration_ms,
            "user_id": str(user.pk) if user is not None else "",
        },
    )


class RequestSpanMiddleware:
    """Right after tenant routing (settings.MIDDLEWARE), inside opentelemetry-instrumentation-
    django's middleware: on the way out, tags the request's span with tenant, user and request
    id and cuts query strings from its URL attributes (observability.tracing.tag_request_span).
    A middleware rather than the instrumentor's ``response_hook``, so it works the same under
    ``opentelemetry-instrument``, which cannot pass hooks. One boolean check when tracing is off.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not tracing_enabled():
            return self.get_response(request)
        span = trace.get_current_span()
        try:
            return self.get_response(request)
        finally:
            tag_request_span(span, request)
