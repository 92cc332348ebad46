"""FHIR Bulk Data export endpoints (IG v2.0.0) on the FHIR base: kick-off, status, files.

Thin views on apikit's base viewset (authentication, tenant membership, the role matrix and the
requester scope: a job is only ever found by the user who started it, so any other user, and any
other tenant, gets 404). Errors are OperationOutcomes (clinical.fhir_api's negotiation mixin).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from django.db.models import QuerySet
from django.http import FileResponse, Http404, HttpResponse
from django.urls import reverse
from django.utils.http import http_date
from rest_framework.exceptions import NotAcceptable, Throttled
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apikit.errors import APIError
from apikit.json import dumps
from apikit.middleware import PRIVATE_NO_STORE
from apikit.policy import BULK_EXPORT_SYSTEM
from apikit.request_context import request_context
from apikit.uploads import stored_file_open
from apikit.viewsets import TenantScopedViewSet
from audit.models import AuditEvent
from audit.services import audit_event_record, audit_object_type
from clinical.bulkdata import services
from clinical.bulkdata.params import KickoffError, kickoff_parse
from clinical.fhir.resources import instant
from clinical.fhir_api.negotiation import FhirJSONRenderer, FhirNegotiationMixin
from clinical.models import BulkExport, BulkExportLevel, BulkExportStatus

NDJSON_TYPES = ("application/fhir+ndjson", "application/ndjson", "application/x-ndjson")
EXPORT_BUSY = "Another export of this organisation is still running; retry after Retry-After."
POLLED_TOO_FAST = "Status requested too often; wait Retry-After seconds between requests."
NOT_NDJSON = "Export files are application/fhir+ndjson; accept that, application/ndjson or */*."


def _status_url(request: Request, export: BulkExport) -> str:
    return request.build_absolute_uri(reverse("fhir-bulk-status", kwargs={"pk": export.pk}))


def _file_url(request: Request, export: BulkExport, resource_type: str) -> str:
    return request.build_absolute_uri(
        reverse("fhir-bulk-file", kwargs={"pk": export.pk, "resource_type": resource_type})
    )


def manifest(*, request: Request, export: BulkExport) -> dict[str, Any]:
    """The completion manifest (IG v2.0.0 "Response - Complete Status")."""
    return {
        "transactionTime": instant(export.transaction_time) if export.transaction_time else None,
        "request": export.request_url,
        "requiresAccessToken": True,
        "output": [
            {
                "type": item["type"],
                "url": _file_url(request, export, item["type"]),
                "count": item["count"],
            }
            for item in export.output
        ],
        "error": [],
    }


class _BulkViewSet(FhirNegotiationMixin, TenantScopedViewSet):
    model = BulkExport
    lookup_field = "pk"

    def scoped_queryset(self) -> QuerySet[BulkExport]:
        # The requester's own jobs: a status or file URL works for nobody else.
        return BulkExport.objects.filter(requested_by_id=self.request.user.pk)

    def live_object(self) -> BulkExport:
        export: BulkExport = self.get_object()
        if services.bulk_export_expired(export=export):
            raise Http404
        return export


class BulkExportKickoffViewSet(_BulkViewSet):
    """``GET [base]/$export`` and ``GET [base]/Patient/$export``."""

    required_permissions: ClassVar[dict[str, str | None]] = {
        "system": BULK_EXPORT_SYSTEM,
        "patient": "clinical.add_bulkexport",
    }

    def system(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._kickoff(request, level=BulkExportLevel.SYSTEM)

    def patient(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._kickoff(request, level=BulkExportLevel.PATIENT)

    def _kickoff(self, request: Request, *, level: str) -> Response:
        try:
            wanted = kickoff_parse(
                level=level, params=dict(request.query_params.lists()), headers=request.headers
            )
        except KickoffError as exc:
            if exc.status == 406:
                raise NotAcceptable(exc.detail) from exc
            raise APIError(
                status=exc.status, code=exc.code.replace("-", "_"), detail=exc.detail
            ) from exc
        context = request_context(request)
        try:
            export = services.bulk_export_kickoff(
                user=request.user,
                request=wanted,
                request_url=request.build_absolute_uri(),
                context=context,
            )
        except services.ExportBusyError as exc:
            raise Throttled(wait=services.retry_after_seconds(), detail=EXPORT_BUSY) from exc
        audit_event_record(
            context=context,
            action=AuditEvent.Action.EXPORT,
            object_type=audit_object_type(BulkExport),
            object_ids=[export.pk],
        )
        return Response(
            status=202,
            headers={
                "Content-Location": _status_url(request, export),
                "Retry-After": str(services.retry_after_seconds()),
                "Cache-Control": PRIVATE_NO_STORE,
            },
        )


class BulkExportStatusViewSet(_BulkViewSet):
    """``GET`` (poll) and ``DELETE`` (cancel) on the status URL of the kick-off's
    Content-Location."""

    required_permissions: ClassVar[dict[str, str | None]] = {
        "status": "clinical.view_bulkexport",
        "cancel": "clinical.delete_bulkexport",
    }

    def status(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        export = self.live_object()
        if export.status == BulkExportStatus.FAILED:
            raise APIError(status=500, code="export_failed", detail=export.error)
        if export.status != BulkExportStatus.COMPLETED:
            try:
                state = services.bulk_export_poll(export=export)
            except services.PolledTooFastError as exc:
                raise Throttled(
                    wait=services.retry_after_seconds(), detail=POLLED_TOO_FAST
                ) from exc
            response = HttpResponse(status=202)
            response["X-Progress"] = state.progress[:100]
            response["Retry-After"] = str(services.retry_after_seconds())
            response["Cache-Control"] = PRIVATE_NO_STORE
            return response
        response = HttpResponse(
            dumps(manifest(request=request, export=export)), content_type="application/json"
        )
        if export.expires_at is not None:
            response["Expires"] = http_date(export.expires_at.timestamp())
        response["Cache-Control"] = PRIVATE_NO_STORE
        return response

    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        export = self.get_object()
        services.bulk_export_delete(export=export)
        return Response(status=202)


class _NdjsonNegotiation(BaseContentNegotiation):
    """Files answer NDJSON (any of its names, or ``*/*``); errors render as FHIR JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        accept = request.headers.get("Accept", "")
        ranges = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
        ranges = [media for media in ranges if media]
        allowed = {*NDJSON_TYPES, "*/*", "application/*"}
        if ranges and not any(media in allowed for media in ranges):
            raise NotAcceptable(NOT_NDJSON)
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class BulkExportFileViewSet(_BulkViewSet):
    """``GET`` one NDJSON file of a completed export (the manifest's ``output[].url``)."""

    content_negotiation_class = _NdjsonNegotiation
    renderer_classes = (FhirJSONRenderer,)
    required_permissions: ClassVar[dict[str, str | None]] = {"download": "clinical.view_bulkexport"}

    def download(self, request: Request, *args: Any, **kwargs: Any) -> FileResponse:
        export = self.live_object()
        resource_type = self.kwargs["resource_type"]
        found = [item for item in export.output if item["type"] == resource_type]
        if export.status != BulkExportStatus.COMPLETED or not found:
            raise Http404
        audit_event_record(
            context=request_context(request),
            action=AuditEvent.Action.EXPORT,
            object_type=audit_object_type(BulkExport),
            object_ids=[export.pk],
        )
        response = FileResponse(
            stored_file_open(path=found[0]["path"]), content_type=NDJSON_TYPES[0]
        )
        response["Cache-Control"] = PRIVATE_NO_STORE
        response["X-Content-Type-Options"] = "nosniff"
        return response
