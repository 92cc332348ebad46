"""Sync endpoints: devices (register, list, revoke) and the pull. Push lives in push_views."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit.inputs import validated
from apikit.json import JSONRenderer
from apikit.pagination import CursorPagination
from apikit.permissions import TenantMember
from apikit.request_context import request_context
from apikit.viewsets import TenantScopedViewSet
from sync import selectors, services
from sync.api import serializers
from sync.cursor import SCHEMA_VERSION
from sync.first_sync import first_sync_stream
from sync.models import Device
from sync.pull import OLDEST_SUPPORTED_SCHEMA, PullRequest, pull_limit, pull_scope, sync_pull
from sync.pull_params import migration_tables, pull_schema_version


class DeviceViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    TenantScopedViewSet,
):
    """Field devices. Any member registers devices for themselves and sees their own;
    tenant_admin sees every device and revokes them (lost phone)."""

    model = Device
    serializer_class = serializers.DeviceOutputSerializer
    pagination_class = CursorPagination
    cursor_ordering = "-created_at"
    # Registering and listing one's own devices needs no model permission (a portal user may
    # sync too); revoking does (tenant_admin).
    required_permissions = {
        "create": None,
        "list": None,
        "retrieve": None,
        "revoke": "sync.change_device",
    }

    def scoped_queryset(self) -> QuerySet[Device]:
        if getattr(self, "swagger_fake_view", False):  # schema generation: no user
            return Device.objects.none()
        return selectors.device_list(user=self.request.user)

    @extend_schema(
        request=serializers.DeviceCreateInputSerializer,
        responses={201: serializers.DeviceRegisteredSerializer},
        summary="Register a device for the calling user",
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(serializers.DeviceCreateInputSerializer, request.data)
        device = services.device_register(user=request.user, **data)
        tables = selectors.tables_for_user(user=request.user, requested=None)
        scope = selectors.sync_scope(user=request.user, tables=tables)
        body = dict(serializers.DeviceOutputSerializer(device).data)
        body["scope"] = {
            "all": scope.container_ids is None,
            "container_ids": [str(pk) for pk in scope.container_ids or ()],
            "tables": [table.name for table in tables],
        }
        body["schema_versions"] = list(range(OLDEST_SUPPORTED_SCHEMA, SCHEMA_VERSION + 1))
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: serializers.DeviceOutputSerializer})
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke a sync device: it can no longer pull or push (a lost or retired phone)."""
        device = services.device_revoke(device=self.get_object(), actor=request.user)
        return Response(serializers.DeviceOutputSerializer(device).data)


class WatermelonRenderer(JSONRenderer):
    """Lets ``?format=wmdb`` through DRF's format negotiation (the view renders its own body;
    an error envelope is rendered by it, so it is the API's one JSON renderer)."""

    format = "wmdb"


WIRE_FORMATS = ("json", "wmdb")
FORMAT_INVALID = "format must be one of: json, wmdb."


class WireFormatMixin:
    """``?format=`` names the wire shape. DRF's content negotiation answers 404 for a format no
    renderer has; here that is a client error about a query parameter: 400 naming it."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        value = request.query_params.get("format")
        # Not when forced: that is DRF rendering an error response, which must not fail again.
        if not force and value is not None and value not in WIRE_FORMATS:
            raise ValidationError({"format": [FORMAT_INVALID]})
        return super().perform_content_negotiation(request, force)  # type: ignore[misc]


_PULL_PARAMETERS = [
    OpenApiParameter("cursor", OpenApiTypes.STR, description="Opaque cursor of the last page."),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Change entries per page, 1-5000."),
    OpenApiParameter("tables", OpenApiTypes.STR, description="Comma-separated wire tables."),
    OpenApiParameter("format", OpenApiTypes.STR, enum=["json", "wmdb"]),
    OpenApiParameter(
        "schema_version",
        OpenApiTypes.INT,
        description="Native: the sync schema version (1). wmdb: the app's local database "
        "version (WatermelonDB's schemaVersion); any positive integer.",
    ),
    OpenApiParameter(
        "migration",
        OpenApiTypes.STR,
        description="wmdb: WatermelonDB's migration argument as JSON ({from, tables, columns}); "
        "every row of the tables it names is sent.",
    ),
]


class PullView(WireFormatMixin, APIView):
    permission_classes = (IsAuthenticated, TenantMember)
    renderer_classes = (JSONRenderer, WatermelonRenderer)

    @extend_schema(
        parameters=_PULL_PARAMETERS,
        responses={200: serializers.PullOutputSerializer},
        summary="Pull changes since a cursor (docs/sync.md)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponseBase:
        params = request.query_params
        raw_tables = params.get("tables")
        tables = (
            [name.strip() for name in raw_tables.split(",") if name.strip()]
            if raw_tables is not None
            else None
        )
        wmdb = params.get("format") == "wmdb"
        pull = PullRequest(
            cursor=params.get("cursor") or None,
            limit=pull_limit(params.get("limit")),
            tables=tables,
            wmdb=wmdb,
            schema_version=pull_schema_version(params, wmdb=wmdb),
            migrated_tables=migration_tables(params.get("migration")),
        )
        context = request_context(request)
        device_id = selectors.request_device_id(request)
        if device_id is not None:
            services.device_seen(device_id=device_id)
        if wmdb and pull.cursor is None:
            tables_, scope = pull_scope(user=request.user, request=pull)
            return StreamingHttpResponse(
                first_sync_stream(user=request.user, tables=tables_, scope=scope, context=context),
                content_type="application/json",
            )
        body = sync_pull(user=request.user, request=pull, context=context)
        return HttpResponse(body, content_type="application/json")
