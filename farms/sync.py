"""Farm tables offered to field apps (platform/sync/registry.py describes the contract),
registered once for the pull and the push; imported by ``FarmsConfig.ready()``.

Rows are scoped by farm grants (``apikit.policy``); rows under an archived farm (or an archived
field / planting above them) are out of scope, so a pull sends them as tombstones. A pushed row
is checked with the same rules the services apply (``farms.rules``), on plain dicts: the
``clean`` hooks below only read the row's references and call those rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import QuerySet

from apikit.policy import AccessLevel, scope_to_containers
from apikit.rules import RuleError
from farms import rules
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from sync.columns import Column, FieldError, choices_of
from sync.push.context import PushContext
from sync.push.rows import Draft, RowErrors
from sync.registry import (
    COMMON_SERVER_MANAGED,
    ConflictPolicy,
    ConstraintRule,
    Derived,
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

# --- push: the rules for one pushed row -------------------------------------------------------

CORRECTION_RACE = "This row already has a correction."


def _farm_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    rules.farm_timezone_check(timezone=values["timezone"])
    try:
        rules.farm_location_check(longitude=values["longitude"], latitude=values["latitude"])
    except RuleError as exc:  # the wire has no "location": the pair is two columns
        raise FieldError("longitude", exc.message, exc.code) from None


def _field_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    ctx.check_ref("farms", column="farm_id", value=values["farm_id"], label="farm")
    values.update(rules.field_boundary_columns(boundary=values["boundary"]))


def _planting_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    errors = RowErrors()
    with errors.collect():
        ctx.check_ref("fields", column="field_id", value=values["field_id"], label="field")
    with errors.collect():
        ctx.check_ref("crops", column="crop_id", value=values["crop_id"], label="crop")
    with errors.collect():
        rules.planting_dates_check(
            planted_on=values["planted_on"], expected_harvest_on=values["expected_harvest_on"]
        )
    errors.raise_any()


def _planting_info(values: dict[str, Any], ctx: PushContext) -> dict[str, Any]:
    field_info = ctx.ref("fields", values["field_id"]) or {}
    return {
        "field_id": values["field_id"],
        "farm_id": field_info.get("farm_id"),
        "status": values["status"],
        "planted_on": values["planted_on"],
        "archived_at": None,
    }


def _farm_of_field(values: dict[str, Any], ctx: PushContext) -> Any:
    return (ctx.ref("fields", values["field_id"]) or {}).get("farm_id")


def _farm_of_planting(values: dict[str, Any], ctx: PushContext) -> Any:
    return (ctx.ref("plantings", values["planting_id"]) or {}).get("farm_id")


def _correction(
    draft: Draft, ctx: PushContext, *, table: str, same_as: Callable[[dict[str, Any]], None]
) -> None:
    """A correction (``supersedes_id``) of a live row of ``table`` that has none yet;
    ``same_as`` checks the row it supersedes (same field / planting)."""
    target_id = draft.values["supersedes_id"]
    if target_id is None:
        return
    existing = draft.existing
    if existing is not None and existing.get("supersedes_id") == target_id:
        return  # an update of the correction itself
    info = ctx.check_ref(table, column="supersedes_id", value=target_id, label=table)
    same_as(info)
    rules.correction_check(already_corrected=bool(info.get("corrected")))


def _observation_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    planting = None
    if values["planting_id"] is not None:
        planting = ctx.check_ref(
            "plantings", column="planting_id", value=values["planting_id"], label="planting"
        )
        if values["field_id"] is None:
            values["field_id"] = planting["field_id"]
    rules.observation_place_check(field_id=values["field_id"], planting_id=values["planting_id"])
    ctx.check_ref("fields", column="field_id", value=values["field_id"], label="field")
    rules.observation_planting_check(
        field_id=values["field_id"],
        planting_field_id=planting["field_id"] if planting is not None else None,
    )
    rules.observation_time_check(observed_at=values["observed_at"], now=ctx.now)
    values["value"], values["unit"] = rules.observation_value(
        kind=values["kind"], value=values["value"], unit=values["unit"], text=values["text"]
    )
    # Which device recorded the row comes from the token's ``did``, never from the body.
    if draft.existing is None:
        values["device_id"] = str(ctx.device_id) if ctx.device_id is not None else ""
    _correction(
        draft,
        ctx,
        table="observations",
        same_as=lambda info: rules.observation_correction_check(
            field_id=values["field_id"], superseded_field_id=info.get("field_id")
        ),
    )


def _harvest_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    planting = ctx.check_ref(
        "plantings", column="planting_id", value=values["planting_id"], label="planting"
    )
    errors = RowErrors()
    with errors.collect():
        rules.harvest_planting_check(planting_status=planting["status"])
    with errors.collect():
        rules.harvest_date_check(
            harvested_on=values["harvested_on"], planted_on=planting["planted_on"]
        )
    with errors.collect():
        rules.harvest_not_future_check(harvested_on=values["harvested_on"], today=ctx.now.date())
    with errors.collect():
        values["quantity_kg"] = rules.harvest_quantity_check(quantity_kg=values["quantity_kg"])
    errors.raise_any()
    _correction(
        draft,
        ctx,
        table="harvests",
        same_as=lambda info: rules.harvest_correction_check(
            planting_id=values["planting_id"], superseded_planting_id=info.get("planting_id")
        ),
    )


def _correction_raced(draft: Draft) -> None:
    """Another device corrected the same row between the checks and the write."""
    draft.reject([FieldError("supersedes_id", CORRECTION_RACE, "already_superseded").as_dict()])


# --- the tables --------------------------------------------------------------------------------

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
        columns=(
            Column("name", "text", required=True, max_length=200),
            Column("region", "text", default="", max_length=200),
            Column("longitude", "float", nullable=True, low=-180, high=180),
            Column("latitude", "float", nullable=True, low=-90, high=90),
            Column("timezone", "text", default="UTC", max_length=64),
        ),
        container_of=lambda values, ctx: values["id"],
        clean=_farm_clean,
        ref_info=lambda values, ctx: {"id": values["id"], "archived_at": None},
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
        columns=(
            Column("farm_id", "uuid", required=True, ref="farms", aliases=("farm",)),
            Column("name", "text", required=True, max_length=200),
            Column("boundary", "json", required=True),
        ),
        container_of=lambda values, ctx: values["farm_id"],
        clean=_field_clean,
        derived=tuple(
            Derived(name, "float8")
            for name in ("area_ha", "bbox_min_lon", "bbox_min_lat", "bbox_max_lon", "bbox_max_lat")
        ),
        ref_info=lambda values, ctx: {"farm_id": values["farm_id"], "archived_at": None},
        ref_sql="t.id, t.archived_at, t.farm_id",
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
        # Read-only for devices (server_wins); the columns say what a push could name.
        columns=(
            Column("name", "text", required=True, max_length=120),
            Column("variety", "text", default="", max_length=120),
            Column("category", "text", default="other", choices=choices_of(Crop.Category)),
        ),
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
        columns=(
            Column("field_id", "uuid", required=True, ref="fields", aliases=("field",)),
            Column("crop_id", "uuid", required=True, ref="crops", aliases=("crop",)),
            Column("season", "text", required=True, max_length=60),
            Column("planted_on", "date", required=True),
            Column("expected_harvest_on", "date", nullable=True),
            Column(
                "status",
                "text",
                default=Planting.Status.PLANNED.value,
                choices=choices_of(Planting.Status),
            ),
        ),
        container_of=_farm_of_field,
        clean=_planting_clean,
        ref_info=_planting_info,
        ref_sql=(
            "t.id, t.archived_at, t.field_id, t.status, t.planted_on, "
            "(SELECT f.farm_id FROM farms_field f WHERE f.id = t.field_id) AS farm_id"
        ),
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
        columns=(
            Column("field_id", "uuid", nullable=True, ref="fields", aliases=("field",)),
            Column("planting_id", "uuid", nullable=True, ref="plantings", aliases=("planting",)),
            Column("observed_at", "datetime", required=True),
            Column("kind", "text", required=True, choices=choices_of(Observation.Kind)),
            Column("value", "float", nullable=True),
            Column("unit", "text", default="", max_length=16),
            Column("text", "text", default="", max_length=5000),
            Column(
                "supersedes_id", "uuid", nullable=True, ref="observations", aliases=("supersedes",)
            ),
        ),
        # Any member who may view the farm records observations.
        write_level=AccessLevel.VIEW,
        container_of=_farm_of_field,
        clean=_observation_clean,
        derived=(Derived("device_id", "text"),),
        recorded_by=True,
        ref_info=lambda values, ctx: {
            "field_id": values["field_id"],
            "corrected": False,
            "archived_at": None,
        },
        ref_sql=(
            "t.id, t.archived_at, t.field_id, EXISTS (SELECT 1 FROM farms_observation c "
            "WHERE c.supersedes_id = t.id AND c.archived_at IS NULL) AS corrected"
        ),
        constraints=(ConstraintRule("farms_obs_one_live_correction", report=_correction_raced),),
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
        columns=(
            Column("planting_id", "uuid", required=True, ref="plantings", aliases=("planting",)),
            Column("harvested_on", "date", required=True),
            Column("quantity_kg", "decimal", required=True, low=0, high=99_999_999_999.999),
            Column("grade", "text", default="", max_length=40),
            Column("supersedes_id", "uuid", nullable=True, ref="harvests", aliases=("supersedes",)),
        ),
        write_level=AccessLevel.VIEW,
        container_of=_farm_of_planting,
        clean=_harvest_clean,
        recorded_by=True,
        ref_info=lambda values, ctx: {
            "planting_id": values["planting_id"],
            "corrected": False,
            "archived_at": None,
        },
        ref_sql=(
            "t.id, t.archived_at, t.planting_id, EXISTS (SELECT 1 FROM farms_harvest c "
            "WHERE c.supersedes_id = t.id AND c.archived_at IS NULL) AS corrected"
        ),
        constraints=(
            ConstraintRule("farms_harvest_one_live_correction", report=_correction_raced),
        ),
    )
)
