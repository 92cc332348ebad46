"""Request-level guards that run around every view: request ids, body size limits, and no
caching of what a signed-in user is shown."""

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.cache import patch_vary_headers

from apikit.errors import error_response
from apikit.request_context import REQUEST_ID_HEADER, request_id_for

# What a signed-in user is shown is personal data: no cache may store it (browser, proxy, CDN).
PRIVATE_NO_STORE = "private, no-store"
# The credentials a response depends on; a cache that ignores no-store still keys by them.
VARY_ON_CREDENTIALS = ("Authorization", "Cookie")


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


class PrivateResponsesMiddleware:
    """``Cache-Control: private, no-store`` and ``Vary: Authorization, Cookie`` on every response
    to an authenticated request — API calls (DRF puts the token's user on the request) and admin
    pages (the session's user): lists, details, downloads, exports, errors and 304s alike — and
    on every response to a request that sent an ``Authorization`` header, even one no view
    authenticated (an unknown route, a refused token): it may depend on those credentials.

    ``no-store`` does not break revalidation: the ETag is still sent, and a client that keeps
    its own copy (the field apps do) still gets 304 for ``If-None-Match``; browsers and shared
    caches simply keep nothing. Anonymous responses (the schema, health) are left alone.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "HTTP_AUTHORIZATION" in request.META or _signed_in(request):
            response["Cache-Control"] = PRIVATE_NO_STORE
            patch_vary_headers(response, VARY_ON_CREDENTIALS)
        return response


def _signed_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated)
