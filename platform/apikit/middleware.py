"""Request-level guards that run before any view: request ids and body size limits."""

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from apikit.errors import error_response
from apikit.request_context import REQUEST_ID_HEADER, request_id_for


class RequestGuardMiddleware:
    """Tags every request with an id (echoed as X-Request-ID) and refuses bodies larger than the
    view allows (``max_body_bytes`` on the view class, else ``API_MAX_BODY_BYTES``) with 413
    before anything reads them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_for(request)  # type: ignore[attr-defined]
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request.request_id  # type: ignore[attr-defined]
        return response

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponse | None:
        view_class = getattr(view_func, "cls", None) or getattr(view_func, "view_class", None)
        limit = int(getattr(view_class, "max_body_bytes", settings.API_MAX_BODY_BYTES))
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error_response(
                status=400, code="bad_request", detail="Content-Length is not a number."
            )
        if length > limit:
            response = error_response(
                status=413,
                code="payload_too_large",
                detail=f"The request body is {length} bytes; this endpoint accepts at most {limit}.",
            )
            # A view may publish its limits (e.g. sync push: rows and bytes) in the envelope.
            limits = getattr(view_class, "payload_limits", None)
            if limits:
                body = json.loads(response.content)
                body["error"]["limits"] = dict(limits)
                response = JsonResponse(body, status=413)
            return response
        return None
