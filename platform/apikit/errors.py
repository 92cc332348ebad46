"""The one error shape every 4xx/5xx answer uses (DESIGN.md section 5):

{"error": {"status": 400, "code": "validation_error", "detail": "...", "fields": {...}}}

plus ``"trace_id"`` when the request's span is being recorded (tracing on and sampled).
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError, InterfaceError, OperationalError, connections
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponsePermanentRedirect,
    JsonResponse,
)
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response

from observability.tracing import recording_trace_id

logger = logging.getLogger(__name__)

SERVER_ERROR_DETAIL = "Something went wrong on our side. It has been logged; try again later."
UNAVAILABLE_DETAIL = "The service is briefly unavailable; retry in a moment."
CONFLICT_DETAIL = "The change conflicts with data written at the same time; reload and retry."
# Lost or refused database connections: the request can be retried once the database is back.
DatabaseUnavailable = (OperationalError, InterfaceError)
NOT_FOUND_DETAIL = "Not found."
OUT_OF_RANGE_DETAIL = (
    "A value in the request is outside what can be stored or compared (e.g. a time zone offset "
    "beyond ±15:59, or a number or date out of range)."
)

# Default machine codes per DRF exception, where DRF's own code is not the contract's.
_CODE_BY_EXCEPTION: dict[type[exceptions.APIException], str] = {
    exceptions.ValidationError: "validation_error",
    exceptions.ParseError: "parse_error",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
}


def set_rollback() -> None:
    """Roll back any open atomic block: an error response must leave nothing half-written.
    (DRF's own helper lives in rest_framework.views, which this module cannot import early.)"""
    for connection in connections.all(initialized_only=True):
        if connection.settings_dict["ATOMIC_REQUESTS"] and connection.in_atomic_block:
            connection.set_rollback(True)


def error_body(
    *, status: int, code: str, detail: str, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"status": status, "code": code, "detail": detail}
    if fields is not None:
        error["fields"] = fields
    # The id of the trace being recorded, so a user's report leads straight to it ("" when off).
    trace_id = recording_trace_id()
    if trace_id:
        error["trace_id"] = trace_id
    return {"error": error}


def error_response(
    *, status: int, code: str, detail: str, fields: dict[str, Any] | None = None
) -> JsonResponse:
    """A plain Django response in the envelope, for code running outside DRF (middleware)."""
    return JsonResponse(
        error_body(status=status, code=code, detail=detail, fields=fields), status=status
    )


class APIError(exceptions.APIException):
    """Raise from services/views with an explicit status and contract code; ``extra`` adds
    machine-readable keys to the error object (e.g. ``{"limit": "max_users", "value": 25}``)."""

    def __init__(
        self, *, status: int, code: str, detail: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail=detail, code=code)
        self.status_code = status
        self.contract_code = code
        self.extra = dict(extra or {})


def _code_for(exc: exceptions.APIException) -> str:
    if isinstance(exc, APIError):
        return exc.contract_code
    if isinstance(exc, exceptions.AuthenticationFailed):
        codes = exc.get_codes()
        if isinstance(codes, dict) and isinstance(codes.get("code"), str):
            return str(codes["code"])  # SimpleJWT's InvalidToken: {"detail", "code", "messages"}
        return codes if isinstance(codes, str) else "authentication_failed"
    for exc_type, code in _CODE_BY_EXCEPTION.items():
        if isinstance(exc, exc_type):
            return code
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else "error"


def _flatten_detail(detail: Any) -> str:
    if isinstance(detail, list):
        return " ".join(_flatten_detail(item) for item in detail)
    if isinstance(detail, dict):
        return " ".join(_flatten_detail(item) for item in detail.values())
    return str(detail)


def _translated(exc: Exception) -> Exception:
    """Django's and the database's exceptions that mean a client error, as DRF's / ours."""
    if isinstance(exc, Http404):
        return exceptions.NotFound(NOT_FOUND_DETAIL)
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, DjangoValidationError):
        # Model-level validation that escaped a serializer is still the client's input.
        return exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    if isinstance(exc, IntegrityError):
        # A constraint caught what validation could not (usually a concurrent duplicate).
        logger.warning("integrity error answered as 409: %s", exc)
        return APIError(status=409, code="conflict", detail=CONFLICT_DETAIL)
    if isinstance(exc, DataError):
        # PostgreSQL refused a value the request supplied (SQLSTATE class 22): the client's input.
        logger.warning("data error answered as 400: %s", exc)
        return APIError(status=400, code="invalid_value", detail=OUT_OF_RANGE_DETAIL)
    return exc


def _detail_and_fields(exc: exceptions.APIException) -> tuple[str, dict[str, Any] | None]:
    """The envelope's ``detail`` and, for validation errors with named fields, ``fields``."""
    if not isinstance(exc, exceptions.ValidationError):
        if isinstance(exc.detail, dict) and "detail" in exc.detail:
            return str(exc.detail["detail"]), None
        return _flatten_detail(exc.detail), None
    if not isinstance(exc.detail, dict):
        return _flatten_detail(exc.detail), None
    fields = {key: _as_messages(value) for key, value in exc.detail.items()}
    non_field = fields.pop("non_field_errors", None)
    if not non_field:
        return "The request has invalid fields; see fields.", fields
    return " ".join(str(m) for m in non_field), fields or None


def _headers(exc: exceptions.APIException) -> dict[str, str]:
    headers: dict[str, str] = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        headers["Retry-After"] = str(math.ceil(wait))
    return headers


def envelope_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF EXCEPTION_HANDLER: every exception becomes the envelope; unknown ones a 500."""
    if isinstance(exc, DatabaseUnavailable):
        logger.warning("database unavailable: %s", exc)
        set_rollback()
        return Response(
            error_body(status=503, code="service_unavailable", detail=UNAVAILABLE_DETAIL),
            status=503,
            headers={"Retry-After": "1"},
        )
    exc = _translated(exc)
    if not isinstance(exc, exceptions.APIException):
        request = context.get("request")
        logger.error(
            "unhandled exception in %s",
            getattr(request, "path", "?"),
            exc_info=(type(exc), exc, exc.__traceback__),
        )
        set_rollback()
        return Response(
            error_body(status=500, code="server_error", detail=SERVER_ERROR_DETAIL), status=500
        )

    detail, fields = _detail_and_fields(exc)
    set_rollback()
    body = error_body(status=exc.status_code, code=_code_for(exc), detail=detail, fields=fields)
    body["error"].update(getattr(exc, "extra", None) or {})
    if isinstance(exc, exceptions.ValidationError) and fields is None:
        body["error"]["fields"] = {}
    return Response(body, status=exc.status_code, headers=_headers(exc))


def _as_messages(value: Any) -> Any:
    """Field errors as lists of strings; nested serializers keep their structure."""
    if isinstance(value, dict):
        return {key: _as_messages(item) for key, item in value.items()}
    if isinstance(value, list):
        if all(isinstance(item, str) for item in value):
            return [str(item) for item in value]
        return [_as_messages(item) for item in value]
    return [str(value)]


NO_SUCH_ENDPOINT = "No such endpoint: check the URL."


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: unknown routes answer in the envelope too."""
    return error_response(status=404, code="not_found", detail=NO_SUCH_ENDPOINT)


@csrf_exempt  # like every DRF view: an unknown route is a 404, never a CSRF refusal
def api_not_found(request: HttpRequest) -> HttpResponse:
    """The last route under /api/ (settings/urls.py): an unknown API path answers the envelope
    whatever DEBUG says. Django's handler404 only runs with DEBUG off; with it on (settings.dev)
    the 404 would be the debug HTML page.

    Matching every path under /api/ hides the missing-slash case from CommonMiddleware's
    APPEND_SLASH, so it is kept here: a path without its trailing slash whose slashed form is a
    real route is redirected there, as before."""
    path = request.path_info
    if settings.APPEND_SLASH and not path.endswith("/"):
        try:
            match = resolve(f"{path}/", urlconf=getattr(request, "urlconf", None))
        except Resolver404:
            match = None
        if match is not None and match.func is not api_not_found:
            return HttpResponsePermanentRedirect(request.get_full_path(force_append_slash=True))
    return json_not_found(request)


def json_server_error(request: HttpRequest) -> HttpResponse:
    """handler500: never a stack trace. Runs inside Django's ``except`` block, so a database
    outage outside DRF (e.g. in tenant routing) still answers 503 rather than 500."""
    if isinstance(sys.exc_info()[1], DatabaseUnavailable):
        response = error_response(status=503, code="service_unavailable", detail=UNAVAILABLE_DETAIL)
        response["Retry-After"] = "1"
        return response
    return error_response(status=500, code="server_error", detail=SERVER_ERROR_DETAIL)
