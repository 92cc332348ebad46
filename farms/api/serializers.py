"""Farm API serializers: slim list outputs, nested detail outputs, and input serializers that
only parse (the domain rules live in farms.rules, called by farms.services)."""

from __future__ import annotations

import math
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apikit.policy import AccessLevel
from apikit.rules import RuleError
from farms import rules
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from farms.units import KG_PER_UNIT

POINT_INVALID = (
    'The location must be a GeoJSON Point: {"type": "Point", "coordinates": [lon, lat]}.'
)
POINT_RANGE = "The location's longitude must be within -180..180 and latitude within -90..90."
QUANTITY_ONE_OF = "Give either quantity_kg, or quantity with its unit."


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "description": "GeoJSON Point, WGS84",
        "properties": {
            "type": {"type": "string", "example": "Point"},
            "coordinates": {"type": "array", "items": {"type": "number"}, "example": [36.07, -0.3]},
        },
    }
)
class PointField(serializers.Field):
    """A GeoJSON Point in, a (longitude, latitude) pair out to the service; null clears it."""

    def to_internal_value(self, data: Any) -> tuple[float, float]:
        coordinates = data.get("coordinates") if isinstance(data, dict) else None
        if (
            not isinstance(data, dict)
            or data.get("type") != "Point"
            or not isinstance(coordinates, list)
            or len(coordinates) not in (2, 3)
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in coordinates
            )
        ):
            raise serializers.ValidationError(POINT_INVALID)
        lon, lat = float(coordinates[0]), float(coordinates[1])
        if not (-180 <= lon <= 180 and -90 <= lat <= 90):
            raise serializers.ValidationError(POINT_RANGE)
        return lon, lat

    def to_representation(self, value: Any) -> Any:
        return value


def _location(farm: Farm) -> dict[str, Any] | None:
    if farm.longitude is None or farm.latitude is None:
        return None
    return {"type": "Point", "coordinates": [farm.longitude, farm.latitude]}


# --- farms -------------------------------------------------------------------------------------


class FarmListOutput(serializers.ModelSerializer[Farm]):
    location = serializers.SerializerMethodField()

    class Meta:
        model = Farm
        fields = ["id", "name", "region", "location", "timezone", "version", "created_at"]

    def get_location(self, farm: Farm) -> dict[str, Any] | None:
        return _location(farm)


class FarmDetailOutput(FarmListOutput):
    class Meta:
        model = Farm
        fields = [*FarmListOutput.Meta.fields, "updated_at", "created_by", "updated_by"]


class FarmCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    region = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    location = PointField(required=False, allow_null=True, default=None)
    timezone = serializers.CharField(max_length=64, required=False, default="UTC")


class FarmUpdateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    region = serializers.CharField(max_length=200, required=False, allow_blank=True)
    location = PointField(required=False, allow_null=True)
    timezone = serializers.CharField(max_length=64, required=False)
    version = serializers.IntegerField(required=False)


class AccessGrantInput(serializers.Serializer[Any]):
    user = serializers.UUIDField()
    level = serializers.ChoiceField(choices=[level.value for level in AccessLevel])


class AccessRevokeInput(serializers.Serializer[Any]):
    level = serializers.ChoiceField(
        choices=[level.value for level in AccessLevel], required=False, allow_null=True
    )


class AccessGrantOutput(serializers.Serializer[Any]):
    user = serializers.UUIDField()
    email = serializers.EmailField()
    role = serializers.CharField()
    level = serializers.CharField()


class AccessListOutput(serializers.Serializer[Any]):
    results = AccessGrantOutput(many=True)


class FarmSummaryOutput(serializers.Serializer[Any]):
    farm = serializers.SerializerMethodField()
    field_count = serializers.IntegerField()
    area_ha = serializers.FloatField()
    plantings_by_status = serializers.DictField(child=serializers.IntegerField())
    harvests = serializers.ListField(child=serializers.DictField())

    def get_farm(self, summary: Any) -> dict[str, Any]:
        return {"id": summary.farm.pk, "name": summary.farm.name}

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        for row in data["harvests"]:
            row["quantity_kg"] = str(row["quantity_kg"])
            row["crop"]["id"] = str(row["crop"]["id"])
        return dict(data)


# --- fields ------------------------------------------------------------------------------------


class FieldListOutput(serializers.ModelSerializer[Field]):
    bbox = serializers.SerializerMethodField()

    class Meta:
        model = Field
        fields = ["id", "farm", "name", "area_ha", "bbox", "version", "created_at"]

    def get_bbox(self, field: Field) -> list[float]:
        return [field.bbox_min_lon, field.bbox_min_lat, field.bbox_max_lon, field.bbox_max_lat]


class FarmRef(serializers.ModelSerializer[Farm]):
    class Meta:
        model = Farm
        fields = ["id", "name"]


class FieldDetailOutput(FieldListOutput):
    farm = FarmRef()

    class Meta:
        model = Field
        fields = [*FieldListOutput.Meta.fields, "boundary", "updated_at", "created_by"]


class FieldCreateInput(serializers.Serializer[Any]):
    farm = serializers.UUIDField()
    name = serializers.CharField(max_length=200)
    boundary = serializers.JSONField()


class FieldUpdateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200, required=False)
    boundary = serializers.JSONField(required=False)
    version = serializers.IntegerField(required=False)


# --- crops -------------------------------------------------------------------------------------


class CropOutput(serializers.ModelSerializer[Crop]):
    class Meta:
        model = Crop
        fields = ["id", "name", "variety", "category", "version", "created_at"]


class CropCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=120)
    variety = serializers.CharField(max_length=120, required=False, default="", allow_blank=True)
    category = serializers.ChoiceField(choices=Crop.Category.choices, default=Crop.Category.OTHER)


class CropUpdateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=120, required=False)
    variety = serializers.CharField(max_length=120, required=False, allow_blank=True)
    category = serializers.ChoiceField(choices=Crop.Category.choices, required=False)
    version = serializers.IntegerField(required=False)


# --- plantings ---------------------------------------------------------------------------------


# Documented without an enum component: other apps also have fields named "status" with other
# choices, and drf-spectacular would give them colliding enum names (a settings-level
# ENUM_NAME_OVERRIDES entry would restore the enum).
@extend_schema_field(
    {"type": "string", "description": "One of: " + ", ".join(Planting.Status.values) + "."}
)
class PlantingStatusField(serializers.ChoiceField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=Planting.Status.choices, **kwargs)


class PlantingListOutput(serializers.ModelSerializer[Planting]):
    status = PlantingStatusField(read_only=True)

    class Meta:
        model = Planting
        fields = [
            "id",
            "field",
            "crop",
            "season",
            "planted_on",
            "expected_harvest_on",
            "status",
            "version",
            "created_at",
        ]


class FieldRef(serializers.ModelSerializer[Field]):
    class Meta:
        model = Field
        fields = ["id", "name", "farm"]


class CropRef(serializers.ModelSerializer[Crop]):
    class Meta:
        model = Crop
        fields = ["id", "name", "variety", "category"]


class PlantingDetailOutput(PlantingListOutput):
    field = FieldRef()
    crop = CropRef()

    class Meta:
        model = Planting
        fields = [*PlantingListOutput.Meta.fields, "updated_at", "created_by"]


class PlantingCreateInput(serializers.Serializer[Any]):
    field = serializers.UUIDField()
    crop = serializers.UUIDField()
    season = serializers.CharField(max_length=60)
    planted_on = serializers.DateField()
    expected_harvest_on = serializers.DateField(required=False, allow_null=True, default=None)
    status = PlantingStatusField(default=Planting.Status.PLANNED)


class PlantingUpdateInput(serializers.Serializer[Any]):
    crop = serializers.UUIDField(required=False)
    season = serializers.CharField(max_length=60, required=False)
    planted_on = serializers.DateField(required=False)
    expected_harvest_on = serializers.DateField(required=False, allow_null=True)
    status = PlantingStatusField(required=False)
    version = serializers.IntegerField(required=False)


class PlantingSummaryOutput(serializers.Serializer[Any]):
    planting = serializers.SerializerMethodField()
    observation_counts = serializers.DictField(child=serializers.IntegerField())
    latest = serializers.SerializerMethodField()
    harvest_total_kg = serializers.DecimalField(max_digits=20, decimal_places=3)
    harvest_count = serializers.IntegerField()

    def get_planting(self, summary: Any) -> dict[str, Any]:
        planting = summary.planting
        return {"id": str(planting.pk), "status": planting.status, "season": planting.season}

    def get_latest(self, summary: Any) -> dict[str, Any]:
        observed_at = serializers.DateTimeField()
        return {
            kind: {
                "id": str(row["id"]),
                "observed_at": observed_at.to_representation(row["observed_at"]),
                "value": row["value"],
                "unit": row["unit"],
                "text": row["text"],
            }
            for kind, row in summary.latest.items()
        }


# --- observations and harvests -----------------------------------------------------------------


class ObservationOutput(serializers.ModelSerializer[Observation]):
    is_superseded = serializers.BooleanField(read_only=True)

    class Meta:
        model = Observation
        fields = [
            "id",
            "field",
            "planting",
            "observed_at",
            "kind",
            "value",
            "unit",
            "text",
            "recorded_by",
            "device_id",
            "supersedes",
            "is_superseded",
            "created_at",
        ]


class ObservationCreateInput(serializers.Serializer[Any]):
    field = serializers.UUIDField(required=False)
    planting = serializers.UUIDField(required=False, allow_null=True, default=None)
    observed_at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=Observation.Kind.choices)
    value = serializers.FloatField(required=False, allow_null=True, default=None)
    unit = serializers.CharField(max_length=16, required=False, default="", allow_blank=True)
    text = serializers.CharField(max_length=5000, required=False, default="", allow_blank=True)
    device_id = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
    supersedes = serializers.UUIDField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            rules.observation_place_check(
                field_id=attrs.get("field"), planting_id=attrs.get("planting")
            )
        except RuleError as exc:
            raise exc.as_validation_error() from None
        return attrs


class HarvestOutput(serializers.ModelSerializer[Harvest]):
    is_superseded = serializers.BooleanField(read_only=True)

    class Meta:
        model = Harvest
        fields = [
            "id",
            "planting",
            "harvested_on",
            "quantity_kg",
            "grade",
            "recorded_by",
            "supersedes",
            "is_superseded",
            "created_at",
        ]


class HarvestCreateInput(serializers.Serializer[Any]):
    planting = serializers.UUIDField()
    harvested_on = serializers.DateField()
    quantity_kg = serializers.DecimalField(
        max_digits=14, decimal_places=3, min_value=0, required=False
    )
    quantity = serializers.DecimalField(
        max_digits=14, decimal_places=3, min_value=0, required=False
    )
    unit = serializers.ChoiceField(choices=list(KG_PER_UNIT), required=False)
    grade = serializers.CharField(max_length=40, required=False, default="", allow_blank=True)
    supersedes = serializers.UUIDField(required=False, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if "quantity_kg" in attrs:
            if "quantity" in attrs or "unit" in attrs:
                raise serializers.ValidationError({"quantity_kg": [QUANTITY_ONE_OF]})
            attrs["quantity"], attrs["unit"] = attrs.pop("quantity_kg"), "kg"
        elif "quantity" not in attrs or "unit" not in attrs:
            raise serializers.ValidationError({"quantity_kg": [QUANTITY_ONE_OF]})
        return attrs
