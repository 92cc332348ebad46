"""Farm endpoints under /api/v1/farms/: thin viewsets on the apikit base; rules live in
farms.services, reads in farms.selectors.

Scope: tenant_admin sees every farm; anyone else only farms granted to them (``view`` /
``manage``), and everything outside answers 404. Changing a farm's structure (the farm, its
fields and plantings) needs ``manage``; recording observations and harvests needs any grant.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response

from apikit.inputs import validated
from apikit.media import negotiated_media_type, produces
from apikit.policy import AccessLevel, can_manage
from apikit.request_context import request_context
from apikit.viewsets import ListMixin, RetrieveMixin, TenantScopedViewSet
from audit.models import AuditEvent
from audit.services import audit_changed_fields, audit_event_record, audit_object_type
from farms import exports, selectors, services
from farms.api import filters
from farms.api import serializers as s
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting

UUID_PATTERN = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

NO_SUCH_FARM = "No such farm, or you cannot manage it."
NO_SUCH_FIELD = "No such field, or you cannot record on it."
NO_SUCH_FIELD_TO_MANAGE = "No such field, or you cannot manage it."
NO_SUCH_CROP = "No such crop in the catalogue."
NO_SUCH_PLANTING = "No such planting, or you cannot record on it."
NO_SUCH_ROW = "No such row to correct."
MANAGE_REQUIRED = "You can see this farm but not manage it; ask for a manage grant."


GEOJSON = "application/geo+json"


def _require_manage(request: Request, farm: Farm) -> None:
    if not can_manage(user=request.user, container=farm):
        raise PermissionDenied(MANAGE_REQUIRED)


def _pick(queryset: QuerySet[Any], pk: Any, field: str, message: str) -> Any:
    found = queryset.filter(pk=pk).first() if pk is not None else None
    if found is None:
        raise serializers.ValidationError({field: [message]})
    return found


class FarmsViewSet(TenantScopedViewSet):
    """Shared by the farm endpoints: drf-spectacular inspects views without a real user, so the
    scoped querysets are empty during schema generation."""

    def schema_generation(self) -> bool:
        return bool(getattr(self, "swagger_fake_view", False))


_LEVEL_PARAMETER = OpenApiParameter(
    "level", str, enum=["view", "manage"], description="manage: downgrade to view"
)


def _changes(data: dict[str, Any]) -> dict[str, Any]:
    data.pop("version", None)
    return data


# --- farms -------------------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(responses=s.FarmListOutput(many=True)))
class FarmViewSet(ListMixin, RetrieveMixin, FarmsViewSet):
    model = Farm
    serializer_class = s.FarmDetailOutput
    lookup_value_regex = UUID_PATTERN
    list_serializer_class = s.FarmListOutput
    detail_serializer_class = s.FarmDetailOutput
    filterset_class = filters.FarmFilter
    ordering_fields = ["name", "region", "created_at"]
    search_fields = ["name", "region"]
    cursor_ordering = "-id"
    required_permissions = {
        "summary": "farms.view_farm",
        "access": "farms.change_farm",
        "access_revoke": "farms.change_farm",
    }

    def scoped_queryset(self) -> QuerySet[Farm]:
        if self.schema_generation():
            return Farm.objects.none()
        return selectors.farm_list(user=self.request.user)

    @extend_schema(request=s.FarmCreateInput, responses={201: s.FarmDetailOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(s.FarmCreateInput, request.data)
        longitude, latitude = data.pop("location") or (None, None)
        farm = services.farm_create(
            name=data["name"],
            region=data["region"],
            longitude=longitude,
            latitude=latitude,
            timezone_name=data["timezone"],
            actor=request.user,
        )
        return self.detail_response(farm, s.FarmDetailOutput, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.FarmUpdateInput, responses={200: s.FarmDetailOutput})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        farm = self.get_object()
        _require_manage(request, farm)
        expected = self.expected_version(farm)
        changes = _changes(validated(s.FarmUpdateInput, request.data))
        if "location" in changes:
            changes["longitude"], changes["latitude"] = changes.pop("location") or (None, None)
        self.audit_changed_fields = audit_changed_fields(instance=farm, changes=changes)
        farm = services.farm_update(
            farm=farm, expected_version=expected, changes=changes, actor=request.user
        )
        return self.detail_response(farm, s.FarmDetailOutput)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        farm = self.get_object()
        _require_manage(request, farm)
        services.farm_archive(
            farm=farm, expected_version=self.expected_version(farm), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.FarmSummaryOutput)
    @action(detail=True, methods=["get"])
    def summary(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The farm's totals: fields and their area, plantings by status, harvested kg by crop and
        season."""
        summary = selectors.farm_summary(farm=self.get_object())
        return Response(s.FarmSummaryOutput(summary).data)

    @extend_schema(
        methods=["GET"],
        request=None,
        responses=s.AccessListOutput,
        summary="List a farm's access grants",
        description="Who holds `view` or `manage` on this farm (managers of the farm only).",
    )
    @extend_schema(
        methods=["POST"],
        request=s.AccessGrantInput,
        responses=s.AccessListOutput,
        summary="Grant access to a farm",
        description="Grant `view` or `manage` (manage includes view) on this farm to a user; "
        "answers the current grants.",
    )
    @action(detail=True, methods=["get", "post"])
    def access(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """GET: who holds a grant on this farm; POST ``{user, level}``: grant ``view`` or
        ``manage`` (manage includes view)."""
        farm = self.get_object()
        _require_manage(request, farm)
        if request.method == "POST":
            data = validated(s.AccessGrantInput, request.data)
            services.farm_access_grant(
                farm=farm,
                user_id=data["user"],
                level=AccessLevel(data["level"]),
                context=request_context(request),
            )
            self.audit_changed_fields = ["access"]
        grants = selectors.farm_grants(farm=farm)
        return Response({"results": s.AccessGrantOutput(grants, many=True).data})

    @extend_schema(
        parameters=[
            OpenApiParameter("user_id", OpenApiTypes.UUID, OpenApiParameter.PATH),
            _LEVEL_PARAMETER,
        ],
        request=None,
        responses={204: None},
    )
    @action(detail=True, methods=["delete"], url_path=rf"access/(?P<user_id>{UUID_PATTERN})")
    def access_revoke(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke a user's grants on this farm (``?level=manage`` downgrades to view)."""
        farm = self.get_object()
        _require_manage(request, farm)
        data = validated(s.AccessRevokeInput, request.query_params)
        level = AccessLevel(data["level"]) if data.get("level") else None
        if not services.farm_access_revoke(
            farm=farm, user_id=kwargs["user_id"], level=level, context=request_context(request)
        ):
            raise Http404
        self.audit_changed_fields = ["access"]
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- fields ------------------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(responses=s.FieldListOutput(many=True)))
class FieldViewSet(ListMixin, RetrieveMixin, FarmsViewSet):
    model = Field
    serializer_class = s.FieldDetailOutput
    list_serializer_class = s.FieldListOutput
    detail_serializer_class = s.FieldDetailOutput
    filterset_class = filters.FieldFilter
    ordering_fields = ["name", "area_ha", "created_at"]
    search_fields = ["name"]
    cursor_ordering = "-id"
    required_permissions = {"geojson": "farms.view_field"}

    def scoped_queryset(self) -> QuerySet[Field]:
        if self.schema_generation():
            return Field.objects.none()
        return selectors.field_list(user=self.request.user).select_related("farm")

    @extend_schema(request=s.FieldCreateInput, responses={201: s.FieldDetailOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(s.FieldCreateInput, request.data)
        farm = _pick(
            selectors.farm_list(user=request.user, level=AccessLevel.MANAGE),
            data["farm"],
            "farm",
            NO_SUCH_FARM,
        )
        field = services.field_create(
            farm=farm, name=data["name"], boundary=data["boundary"], actor=request.user
        )
        return self.detail_response(field, s.FieldDetailOutput, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.FieldUpdateInput, responses={200: s.FieldDetailOutput})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        field = self.get_object()
        _require_manage(request, field.farm)
        expected = self.expected_version(field)
        changes = _changes(validated(s.FieldUpdateInput, request.data))
        self.audit_changed_fields = list(changes)
        field = services.field_update(
            field=field, expected_version=expected, changes=changes, actor=request.user
        )
        return self.detail_response(field, s.FieldDetailOutput)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        field = self.get_object()
        _require_manage(request, field.farm)
        services.field_archive(
            field=field, expected_version=self.expected_version(field), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @produces(
        GEOJSON,
        "application/json",
        json_body=True,
        description="A GeoJSON FeatureCollection, streamed.",
    )
    @action(detail=False, methods=["get"])
    def geojson(self, request: Request, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        """Every visible field matching the filters as one GeoJSON FeatureCollection, streamed
        (``application/geo+json``, or ``application/json`` when asked for)."""
        queryset = self.filter_queryset(self.get_queryset())
        return StreamingHttpResponse(
            exports.in_tenant(request.tenant, exports.field_feature_collection(queryset)),  # type: ignore[attr-defined]
            content_type=negotiated_media_type(request, GEOJSON),
        )


# --- crops -------------------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(responses=s.CropOutput(many=True)))
class CropViewSet(ListMixin, RetrieveMixin, FarmsViewSet):
    model = Crop
    serializer_class = s.CropOutput
    list_serializer_class = s.CropOutput
    detail_serializer_class = s.CropOutput
    filterset_class = filters.CropFilter
    ordering_fields = ["name", "variety", "category", "created_at"]
    search_fields = ["name", "variety"]
    cursor_ordering = "-id"

    def scoped_queryset(self) -> QuerySet[Crop]:
        if self.schema_generation():
            return Crop.objects.none()
        return selectors.crop_list()

    @extend_schema(request=s.CropCreateInput, responses={201: s.CropOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(s.CropCreateInput, request.data)
        crop = services.crop_create(actor=request.user, **data)
        return self.detail_response(crop, s.CropOutput, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.CropUpdateInput, responses={200: s.CropOutput})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        crop = self.get_object()
        expected = self.expected_version(crop)
        changes = _changes(validated(s.CropUpdateInput, request.data))
        self.audit_changed_fields = audit_changed_fields(instance=crop, changes=changes)
        crop = services.crop_update(
            crop=crop, expected_version=expected, changes=changes, actor=request.user
        )
        return self.detail_response(crop, s.CropOutput)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        crop = self.get_object()
        services.crop_archive(
            crop=crop, expected_version=self.expected_version(crop), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- plantings ---------------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(responses=s.PlantingListOutput(many=True)))
class PlantingViewSet(ListMixin, RetrieveMixin, FarmsViewSet):
    model = Planting
    serializer_class = s.PlantingDetailOutput
    list_serializer_class = s.PlantingListOutput
    detail_serializer_class = s.PlantingDetailOutput
    filterset_class = filters.PlantingFilter
    ordering_fields = ["planted_on", "expected_harvest_on", "season", "status", "created_at"]
    search_fields = ["season", "field__name", "crop__name", "crop__variety"]
    cursor_ordering = "-id"
    required_permissions = {"summary": "farms.view_planting"}

    def scoped_queryset(self) -> QuerySet[Planting]:
        if self.schema_generation():
            return Planting.objects.none()
        return selectors.planting_list(user=self.request.user).select_related(
            "field", "field__farm", "crop"
        )

    @extend_schema(request=s.PlantingCreateInput, responses={201: s.PlantingDetailOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(s.PlantingCreateInput, request.data)
        field = _pick(
            selectors.field_list(user=request.user, level=AccessLevel.MANAGE),
            data.pop("field"),
            "field",
            NO_SUCH_FIELD_TO_MANAGE,
        )
        crop = _pick(selectors.crop_list(), data.pop("crop"), "crop", NO_SUCH_CROP)
        planting = services.planting_create(field=field, crop=crop, actor=request.user, **data)
        return self.detail_response(
            planting, s.PlantingDetailOutput, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=s.PlantingUpdateInput, responses={200: s.PlantingDetailOutput})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        planting = self.get_object()
        _require_manage(request, planting.field.farm)
        expected = self.expected_version(planting)
        changes = _changes(validated(s.PlantingUpdateInput, request.data))
        if "crop" in changes:
            changes["crop"] = _pick(selectors.crop_list(), changes["crop"], "crop", NO_SUCH_CROP)
        self.audit_changed_fields = list(changes)
        planting = services.planting_update(
            planting=planting, expected_version=expected, changes=changes, actor=request.user
        )
        return self.detail_response(planting, s.PlantingDetailOutput)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        planting = self.get_object()
        _require_manage(request, planting.field.farm)
        services.planting_archive(
            planting=planting, expected_version=self.expected_version(planting), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.PlantingSummaryOutput)
    @action(detail=True, methods=["get"])
    def summary(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """The planting in figures: observations by kind with the latest reading of each, and the
        harvest total (superseded rows left out)."""
        summary = selectors.planting_summary(planting=self.get_object())
        return Response(s.PlantingSummaryOutput(summary).data)


# --- observations and harvests (append-only: no PUT / PATCH route) -----------------------------


@extend_schema_view(list=extend_schema(responses=s.ObservationOutput(many=True)))
class ObservationViewSet(ListMixin, RetrieveMixin, FarmsViewSet):
    """List, read and append. A correction is a new row with ``supersedes``; tenant_admin and
    agronomists with ``manage`` on the farm may archive a row (DELETE) to clean up bad data."""

    model = Observation
    serializer_class = s.ObservationOutput
    list_serializer_class = s.ObservationOutput
    detail_serializer_class = s.ObservationOutput
    filterset_class = filters.ObservationFilter
    ordering_fields = ["observed_at", "kind", "created_at"]
    search_fields = ["text", "device_id"]
    cursor_ordering = "-id"
    required_permissions = {"export": "farms.view_observation"}

    def scoped_queryset(self) -> QuerySet[Observation]:
        if self.schema_generation():
            return Observation.objects.none()
        return selectors.observation_list(user=self.request.user)

    @extend_schema(request=s.ObservationCreateInput, responses={201: s.ObservationOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(s.ObservationCreateInput, request.data)
        planting = None
        if data["planting"] is not None:
            planting = _pick(
                selectors.planting_list(user=request.user).select_related("field"),
                data["planting"],
                "planting",
                NO_SUCH_PLANTING,
            )
        if planting is not None and data.get("field") is None:
            field = planting.field
        else:
            # The input serializer requires the field, the planting, or both.
            field = _pick(
                selectors.field_list(user=request.user), data.get("field"), "field", NO_SUCH_FIELD
            )
        supersedes = None
        if data["supersedes"] is not None:
            supersedes = _pick(
                selectors.observation_list(user=request.user),
                data["supersedes"],
                "supersedes",
                NO_SUCH_ROW,
            )
        observation = services.observation_record(
            field=field,
            planting=planting,
            observed_at=data["observed_at"],
            kind=data["kind"],
            value=data["value"],
            unit=data["unit"],
            text=data["text"],
            device_id=data["device_id"],
            supersedes=supersedes,
            actor=request.user,
        )
        observation.is_superseded = False  # type: ignore[attr-defined]
        return self.detail_response(
            observation, s.ObservationOutput, status=status.HTTP_201_CREATED
        )

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        observation = self.get_object()
        _require_manage(request, observation.field.farm)
        services.observation_archive(observation=observation, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @produces("text/csv", description="CSV with a header row, one row per observation, streamed.")
    @action(detail=False, methods=["get"])
    def export(self, request: Request, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        """The visible observations matching the filters as CSV (canonical units), streamed."""
        queryset = self.filter_queryset(self.get_queryset())
        audit_event_record(
            context=request_context(request),
            action=AuditEvent.Action.EXPORT,
            object_type=audit_object_type(Observation),
        )
        response = StreamingHttpResponse(
            exports.in_tenant(request.tenant, exports.observation_csv(queryset)),  # type: ignore[attr-defined]
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = 'attachment; filename="observations.csv"'
        return response


@extend_schema_view(list=extend_schema(responses=s.HarvestOutput(many=True)))
class HarvestViewSet(ListMixin, RetrieveMixin, FarmsViewSet):
    """List, read and append (corrections via ``supersedes``), like observations."""

    model = Harvest
    serializer_class = s.HarvestOutput
    list_serializer_class = s.HarvestOutput
    detail_serializer_class = s.HarvestOutput
    filterset_class = filters.HarvestFilter
    ordering_fields = ["harvested_on", "quantity_kg", "created_at"]
    search_fields = ["grade"]
    cursor_ordering = "-id"

    def scoped_queryset(self) -> QuerySet[Harvest]:
        if self.schema_generation():
            return Harvest.objects.none()
        return selectors.harvest_list(user=self.request.user)

    @extend_schema(request=s.HarvestCreateInput, responses={201: s.HarvestOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(s.HarvestCreateInput, request.data)
        planting = _pick(
            selectors.planting_list(user=request.user),
            data["planting"],
            "planting",
            NO_SUCH_PLANTING,
        )
        supersedes = None
        if data["supersedes"] is not None:
            supersedes = _pick(
                selectors.harvest_list(user=request.user),
                data["supersedes"],
                "supersedes",
                NO_SUCH_ROW,
            )
        harvest = services.harvest_record(
            planting=planting,
            harvested_on=data["harvested_on"],
            quantity=data["quantity"],
            unit=data["unit"],
            grade=data["grade"],
            supersedes=supersedes,
            actor=request.user,
        )
        harvest.is_superseded = False  # type: ignore[attr-defined]
        return self.detail_response(harvest, s.HarvestOutput, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        harvest = self.get_object()
        _require_manage(request, harvest.planting.field.farm)
        services.harvest_archive(harvest=harvest, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
