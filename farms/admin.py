"""The tenant admins' view of the farm domain (Django admin on each tenant host).

Observations and harvests are append-only here too: they can be read and archived through the
API, never edited in place. Every admin is an ``audit.admin_audit.AuditedModelAdmin`` (writes,
actions and grants are on the tenant's audit trail); farm grants go through the API's services.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest

from apikit.policy import AccessLevel
from apikit.request_context import request_context
from audit.admin_audit import AuditedGuardedModelAdmin, AuditedModelAdmin
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from farms.services import farm_access_grant, farm_access_revoke

_STAMPS = ("id", "created_at", "updated_at", "created_by", "updated_by", "version", "archived_at")


@admin.register(Farm)
class FarmAdmin(AuditedGuardedModelAdmin):
    """Object permissions (view / manage grants) are edited under "Object permissions", through
    the services of the API's ``access/`` endpoints (``manage`` includes ``view``; revoking
    ``view`` revokes both)."""

    list_display = ["name", "region", "timezone", "created_at", "archived_at"]
    list_filter = ["region", "timezone"]
    search_fields = ["name", "region"]
    readonly_fields = _STAMPS

    def container_access_change(
        self, *, request: HttpRequest, container: Model, user: Any, level: AccessLevel, grant: bool
    ) -> None:
        farm, context = cast(Farm, container), request_context(request)
        if grant:
            farm_access_grant(farm=farm, user_id=user.pk, level=level, context=context)
        else:
            farm_access_revoke(farm=farm, user_id=user.pk, level=level, context=context)


@admin.register(Field)
class FieldAdmin(AuditedModelAdmin):
    list_display = ["name", "farm", "area_ha", "created_at", "archived_at"]
    list_select_related = ["farm"]
    list_filter = ["farm"]
    search_fields = ["name", "farm__name"]
    readonly_fields = (
        *_STAMPS,
        "area_ha",
        "bbox_min_lon",
        "bbox_min_lat",
        "bbox_max_lon",
        "bbox_max_lat",
    )
    raw_id_fields = ["farm"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Area and bbox are computed by farms.services from a validated boundary: use the API.
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Crop)
class CropAdmin(AuditedModelAdmin):
    list_display = ["name", "variety", "category", "archived_at"]
    list_filter = ["category"]
    search_fields = ["name", "variety"]
    readonly_fields = _STAMPS


@admin.register(Planting)
class PlantingAdmin(AuditedModelAdmin):
    list_display = ["field", "crop", "season", "planted_on", "expected_harvest_on", "status"]
    list_select_related = ["field", "crop"]
    list_filter = ["status", "season", "crop"]
    search_fields = ["season", "field__name", "crop__name"]
    date_hierarchy = "planted_on"
    readonly_fields = _STAMPS
    raw_id_fields = ["field", "crop"]


class _AppendOnlyAdmin(AuditedModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Observation)
class ObservationAdmin(_AppendOnlyAdmin):
    list_display = ["observed_at", "kind", "value", "unit", "field", "planting", "recorded_by"]
    list_select_related = ["field", "planting", "recorded_by"]
    list_filter = ["kind"]
    search_fields = ["text", "device_id", "field__name"]
    date_hierarchy = "observed_at"
    raw_id_fields = ["field", "planting", "recorded_by", "supersedes"]


@admin.register(Harvest)
class HarvestAdmin(_AppendOnlyAdmin):
    list_display = ["harvested_on", "quantity_kg", "grade", "planting", "recorded_by"]
    list_select_related = ["planting", "recorded_by"]
    list_filter = ["grade"]
    search_fields = ["grade", "planting__season", "planting__field__name"]
    date_hierarchy = "harvested_on"
    raw_id_fields = ["planting", "recorded_by", "supersedes"]
