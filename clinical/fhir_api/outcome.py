"""Errors of the FHIR base as OperationOutcome resources.

Every error of a FHIR endpoint first goes through apikit's one exception handler (status, headers
such as ``Retry-After`` and ``WWW-Authenticate``, rollback, logging of 500s), and only its body is
rewritten: the same decisions as the REST API, in FHIR's shape. The envelope's machine code is
kept in ``issue.details.coding`` (system ``error_code_system()``), its message in
``issue.diagnostics``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework.response import Response

from apikit.errors import envelope_exception_handler
from apikit.json import dumps

FHIR_JSON = "application/fhir+json"
FHIR_CONTENT_TYPE = f"{FHIR_JSON}; charset=utf-8"
# HTTP status -> FHIR issue-type (http://hl7.org/fhir/issue-type).
_ISSUE_TYPE = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    429: "throttled",
    503: "transient",
}


def error_code_system() -> str:
    """The code system of Verdant's error codes (the REST envelope's ``code``)."""
    return f"https://{settings.BASE_DOMAIN}/fhir/CodeSystem/error-code"


def operation_outcome(
    *, status: int, code: str, detail: str, fields: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One issue (``error``), plus one per invalid field (``expression`` names it)."""
    issue_type = _ISSUE_TYPE.get(status, "exception" if status >= 500 else "processing")
    issues: list[dict[str, Any]] = [
        {
            "severity": "error",
            "code": issue_type,
            "details": {"coding": [{"system": error_code_system(), "code": code}]},
            "diagnostics": detail or code,
        }
    ]
    for field, messages in (fields or {}).items():
        text = " ".join(str(m) for m in messages) if isinstance(messages, list) else str(messages)
        issues.append(
            {
                "severity": "error",
                "code": issue_type,
                "diagnostics": text or code,
                "expression": [str(field)],
            }
        )
    return {"resourceType": "OperationOutcome", "issue": issues}


def outcome_from_envelope(body: Any, *, status: int) -> dict[str, Any]:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return operation_outcome(
        status=status,
        code=str(error.get("code", "error")),
        detail=str(error.get("detail", "")),
        fields=error.get("fields") or None,
    )


def fhir_exception_handler(exc: Exception, context: dict[str, Any]) -> Response:
    """DRF exception handler for FHIR views (their ``get_exception_handler``)."""
    response = envelope_exception_handler(exc, context)
    response.data = outcome_from_envelope(response.data, status=response.status_code)
    return response


def outcome_response(
    *, status: int, code: str, detail: str, headers: dict[str, str] | None = None
) -> HttpResponse:
    """A plain Django response carrying an OperationOutcome (outside DRF: unknown routes)."""
    body = operation_outcome(status=status, code=code, detail=detail)
    response = HttpResponse(dumps(body), status=status, content_type=FHIR_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


NO_SUCH_FHIR_ENDPOINT = (
    "No such FHIR endpoint: the base serves metadata, Patient, Appointment, Practitioner, "
    "Location and Organization."
)


@csrf_exempt  # an unknown route is a 404 whatever the method, never a CSRF refusal
def fhir_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """The last route under the FHIR base: an unknown path is a 404 OperationOutcome."""
    return outcome_response(status=404, code="not_found", detail=NO_SUCH_FHIR_ENDPOINT)
