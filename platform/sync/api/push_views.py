"""``POST /api/v1/sync/push/``: a thin view over ``sync.push.service.sync_push``.

The body is read raw (optionally gzip), checked against the limits (5,000 rows, 10 MB
decompressed; 413 with the limits in the error), parsed once with orjson, and run at most once
per ``Idempotency-Key`` (required): the rows and the stored response commit together, a replay
returns the stored bytes with ``Idempotent-Replayed: true``, the same key with another body is
422 ``idempotency_key_reused``."""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from apikit import idempotency
from apikit.errors import APIError
from apikit.ids import parse_uuid
from apikit.json import JSONRenderer
from apikit.permissions import TenantMember
from apikit.request_context import request_context
from sync.api.views import WatermelonRenderer, WireFormatMixin
from sync.cursor import cursor_decode
from sync.push.parsing import LIMITS, MAX_BYTES, PushTooLargeError, batch_parse, body_decode
from sync.push.service import response_bytes, sync_push
from sync.registry import tables_not_served_check

KEY_REQUIRED = (
    "A push needs an Idempotency-Key header (a UUID per batch, reused when the same batch is "
    "retried)."
)
# Push keys live in the idempotency store under their own prefix (kept longer than other keys).
KEY_PREFIX = "sync-push:"


class PushView(WireFormatMixin, APIView):
    permission_classes = (IsAuthenticated, TenantMember)
    # ``?format=wmdb`` must pass DRF's format negotiation (the view writes its own bytes).
    renderer_classes = (JSONRenderer, WatermelonRenderer)
    # RequestGuardMiddleware refuses larger bodies before they are read (413 with the limits).
    max_body_bytes: ClassVar[int] = MAX_BYTES
    payload_limits: ClassVar[dict[str, int]] = LIMITS

    @extend_schema(
        operation_id="sync_push",
        parameters=[
            OpenApiParameter(
                "Idempotency-Key", OpenApiTypes.STR, OpenApiParameter.HEADER, required=True
            ),
            OpenApiParameter(
                "format",
                OpenApiTypes.STR,
                OpenApiParameter.QUERY,
                enum=["wmdb"],
                description="wmdb: WatermelonDB's push shape ({changes: {table: {created, "
                "updated, deleted}}, lastPulledAt}).",
            ),
        ],
        request=OpenApiTypes.OBJECT,
        responses={200: OpenApiTypes.OBJECT},
        description="Push local changes: per-row results (applied, merged, conflict with the "
        "server's copy, rejected with errors, duplicate, gone), a summary and a cursor. Send "
        "your last pull cursor as `cursor` (WatermelonDB: `lastPulledAt`): the answer's cursor "
        "then also covers the pushed rows when nothing else changed since, and is your own "
        "cursor back otherwise (null without one). See docs/sync.md.",
    )
    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        key = request.headers.get(idempotency.HEADER, "").strip()
        if not key:
            raise APIError(status=400, code="idempotency_key_required", detail=KEY_REQUIRED)
        raw = request.body  # DRF proxies the HttpRequest: the exact bytes
        try:
            body = body_decode(raw, content_encoding=request.headers.get("Content-Encoding", ""))
            batch = batch_parse(body, wmdb=request.query_params.get("format") == "wmdb")
        except PushTooLargeError as exc:
            return _too_large(exc)
        # Rows for a table outside the tenant's kind: 400 before any write. WatermelonDB sends
        # every table of the app's local schema, so an empty one is no error.
        tables_not_served_check(name for name, rows in batch.tables.items() if rows)
        if batch.since is not None:
            cursor_decode(batch.since)  # a tampered or foreign cursor: 400 before any write
        device = parse_uuid(_device_claim(request))
        context = request_context(request)

        def handler() -> HttpResponse:
            try:
                result = sync_push(
                    user=request.user,
                    device_id=device,
                    batch=batch,
                    batch_id=key,
                    context=context,
                )
            except Exception as exc:  # the envelope; run_idempotently stores 2xx only
                # Rendered by DRF's finalize_response on the way out (not stored).
                return self.handle_exception(exc)
            return HttpResponse(response_bytes(result), content_type="application/json")

        return idempotency.run_idempotently(request, key=KEY_PREFIX + key, handler=handler)


def _device_claim(request: Request) -> Any:
    from sync.selectors import request_device_id

    return request_device_id(request)


def _too_large(exc: PushTooLargeError) -> HttpResponse:
    from apikit.errors import error_body

    body = error_body(status=413, code=exc.contract_code, detail=str(exc.detail))
    body["error"]["limits"] = LIMITS
    return HttpResponse(response_bytes(body), status=413, content_type="application/json")
