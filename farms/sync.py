"""Farm tables offered to field apps (platform/sync/registry.py describes the contract).

Rows are scoped by farm grants (``apikit.policy``); rows under an archived farm (or an archived
field / planting above them) are out of scope, so a pull sends them as tombstones.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from apikit.policy import AccessLevel, scope_to_containers
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from sync.registry import (
    COMMON_SERVER_MANAGED,
    ConflictPolicy,
    SyncTable,
    projection_all,
    register,
)

_BASE = {"id": "id", "version": "version", "created_at": "created_at", "updated_at": "updated_at"}


def _farm_scope(farm_path: str, *, archived_paths: tuple[str, ...] = ()) -> Any:
    def scope(user: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
        active = queryset.filter(
            **{f"{path}__archived_at__isnull": True for path in (farm_path, *archived_paths)}
        )
        return scope_to_containers(
            active,
            user=user,
            container_field=farm_path,
            container_model=Farm,
            level=AccessLevel.VIEW,
        )

    return scope


def _farms_scope(user: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    return scope_to_containers(
        queryset, user=user, container_field="pk", container_model=Farm, level=AccessLevel.VIEW
    )


def _crops_scope(user: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    # The catalogue is tenant-wide (farms.selectors.crop_list).
    return queryset


FARM_FIELDS = {
    **_BASE,
    "name": "name",
    "region": "region",
    "longitude": "longitude",
    "latitude": "latitude",
    "timezone": "timezone",
}
FIELD_FIELDS = {
    **_BASE,
    "farm_id": "farm_id",
    "name": "name",
    "boundary": "boundary",
    "area_ha": "area_ha",
}
CROP_FIELDS = {**_BASE, "name": "name", "variety": "variety", "category": "category"}
PLANTING_FIELDS = {
    **_BASE,
    "field_id": "field_id",
    "crop_id": "crop_id",
    "season": "season",
    "planted_on": "planted_on",
    "expected_harvest_on": "expected_harvest_on",
    "status": "status",
}
OBSERVATION_FIELDS = {
    **_BASE,
    "field_id": "field_id",
    "planting_id": "planting_id",
    "observed_at": "observed_at",
    "kind": "kind",
    "value": "value",
    "unit": "unit",
    "text": "text",
    "recorded_by_id": "recorded_by_id",
    "device_id": "device_id",
    "supersedes_id": "supersedes_id",
}
HARVEST_FIELDS = {
    **_BASE,
    "planting_id": "planting_id",
    "harvested_on": "harvested_on",
    "quantity_kg": "quantity_kg",
    "grade": "grade",
    "recorded_by_id": "recorded_by_id",
    "supersedes_id": "supersedes_id",
}

FARMS = register(
    SyncTable(
        name="farms",
        model=Farm,
        fields=FARM_FIELDS,
        server_managed=COMMON_SERVER_MANAGED,
        conflict_policy=ConflictPolicy.FIELD_MERGE,
        scope=_farms_scope,
        projection=projection_all(FARM_FIELDS),
        view_permission="farms.view_farm",
        container_model=Farm,
        container_path="id",
    )
)
FIELDS = register(
    SyncTable(
        name="fields",
        model=Field,
        fields=FIELD_FIELDS,
        # The area is computed on the server from the boundary.
        server_managed=COMMON_SERVER_MANAGED | {"area_ha"},
        conflict_policy=ConflictPolicy.FIELD_MERGE,
        scope=_farm_scope("farm"),
        projection=projection_all(FIELD_FIELDS),
        view_permission="farms.view_field",
        container_model=Farm,
        container_path="farm_id",
        depends_on=("farms",),
    )
)
CROPS = register(
    SyncTable(
        name="crops",
        model=Crop,
        fields=CROP_FIELDS,
        server_managed=COMMON_SERVER_MANAGED,
        conflict_policy=ConflictPolicy.SERVER_WINS,
        scope=_crops_scope,
        projection=projection_all(CROP_FIELDS),
        view_permission="farms.view_crop",
        container_model=None,
        container_path=None,
    )
)
PLANTINGS = register(
    SyncTable(
        name="plantings",
        model=Planting,
        fields=PLANTING_FIELDS,
        server_managed=COMMON_SERVER_MANAGED,
        conflict_policy=ConflictPolicy.FIELD_MERGE,
        scope=_farm_scope("field__farm", archived_paths=("field",)),
        projection=projection_all(PLANTING_FIELDS),
        view_permission="farms.view_planting",
        container_model=Farm,
        container_path="field__farm_id",
        depends_on=("fields", "crops"),
    )
)
OBSERVATIONS = register(
    SyncTable(
        name="observations",
        model=Observation,
        fields=OBSERVATION_FIELDS,
        # Who recorded it and from which device come from the token, never from the body.
        server_managed=COMMON_SERVER_MANAGED | {"recorded_by_id", "device_id"},
        conflict_policy=ConflictPolicy.APPEND_ONLY,
        scope=_farm_scope("field__farm", archived_paths=("field",)),
        projection=projection_all(OBSERVATION_FIELDS),
        view_permission="farms.view_observation",
        container_model=Farm,
        container_path="field__farm_id",
        depends_on=("fields", "plantings"),
    )
)
HARVESTS = register(
    SyncTable(
        name="harvests",
        model=Harvest,
        fields=HARVEST_FIELDS,
        server_managed=COMMON_SERVER_MANAGED | {"recorded_by_id"},
        conflict_policy=ConflictPolicy.APPEND_ONLY,
        scope=_farm_scope("planting__field__farm", archived_paths=("planting", "planting__field")),
        projection=projection_all(HARVEST_FIELDS),
        view_permission="farms.view_harvest",
        container_model=Farm,
        container_path="planting__field__farm_id",
        depends_on=("plantings",),
    )
)
