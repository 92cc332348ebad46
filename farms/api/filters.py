"""Query filters for the farm endpoints. Invalid values are a 400 envelope naming the parameter
(DjangoFilterBackend raises a ValidationError with the form's errors), never ignored."""

from __future__ import annotations

import math
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from audit.api.filters import StrictBooleanFilter
from farms import selectors
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting

BBOX_INVALID = "Use bbox=minLon,minLat,maxLon,maxLat (four numbers, WGS84)."
BBOX_RANGE = "bbox longitudes must be within -180..180 and latitudes within -90..90."
BBOX_ORDER = "bbox minimums must not exceed maximums (boxes across the antimeridian: query twice)."


class _BBoxField(forms.Field):
    def to_python(self, value: Any) -> tuple[float, float, float, float] | None:
        if value in (None, ""):
            return None
        parts = str(value).split(",")
        try:
            numbers = [float(part) for part in parts]
        except ValueError:
            raise forms.ValidationError(BBOX_INVALID, code="invalid") from None
        if len(numbers) != 4 or not all(math.isfinite(n) for n in numbers):
            raise forms.ValidationError(BBOX_INVALID, code="invalid")
        min_lon, min_lat, max_lon, max_lat = numbers
        if not all(-180 <= lon <= 180 for lon in (min_lon, max_lon)) or not all(
            -90 <= lat <= 90 for lat in (min_lat, max_lat)
        ):
            raise forms.ValidationError(BBOX_RANGE, code="invalid")
        if min_lon > max_lon or min_lat > max_lat:
            raise forms.ValidationError(BBOX_ORDER, code="invalid")
        return min_lon, min_lat, max_lon, max_lat


@extend_schema_field(OpenApiTypes.STR)
class BBoxFilter(django_filters.Filter):
    field_class = _BBoxField

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value is None:
            return qs
        min_lon, min_lat, max_lon, max_lat = value
        return selectors.fields_in_bbox(
            qs, min_lon=min_lon, min_lat=min_lat, max_lon=max_lon, max_lat=max_lat
        )


class CurrentFilter(StrictBooleanFilter):
    """``current=true``: only rows without a live correction; ``false``: only superseded rows."""

    def filter(self, qs: QuerySet[Any], value: Any) -> QuerySet[Any]:
        if value is None:
            return qs
        return qs.filter(is_superseded=not value)


class FarmFilter(django_filters.FilterSet):
    region = django_filters.CharFilter(field_name="region", lookup_expr="iexact")

    class Meta:
        model = Farm
        fields: list[str] = []


class FieldFilter(django_filters.FilterSet):
    farm = django_filters.UUIDFilter(field_name="farm_id")
    bbox = BBoxFilter(label="minLon,minLat,maxLon,maxLat: fields whose bounding box intersects it")

    class Meta:
        model = Field
        fields: list[str] = []


class CropFilter(django_filters.FilterSet):
    category = django_filters.ChoiceFilter(choices=Crop.Category.choices)

    class Meta:
        model = Crop
        fields: list[str] = []


class PlantingFilter(django_filters.FilterSet):
    farm = django_filters.UUIDFilter(field_name="field__farm_id")
    field = django_filters.UUIDFilter(field_name="field_id")
    crop = django_filters.UUIDFilter(field_name="crop_id")
    status = django_filters.ChoiceFilter(choices=Planting.Status.choices)
    season = django_filters.CharFilter(field_name="season")

    class Meta:
        model = Planting
        fields: list[str] = []


class ObservationFilter(django_filters.FilterSet):
    farm = django_filters.UUIDFilter(field_name="field__farm_id")
    field = django_filters.UUIDFilter(field_name="field_id")
    planting = django_filters.UUIDFilter(field_name="planting_id")
    kind = django_filters.ChoiceFilter(choices=Observation.Kind.choices)
    observed_after = django_filters.IsoDateTimeFilter(field_name="observed_at", lookup_expr="gte")
    observed_before = django_filters.IsoDateTimeFilter(field_name="observed_at", lookup_expr="lt")
    recorded_by = django_filters.UUIDFilter(field_name="recorded_by_id")
    device_id = django_filters.CharFilter(field_name="device_id")
    current = CurrentFilter()

    class Meta:
        model = Observation
        fields: list[str] = []


class HarvestFilter(django_filters.FilterSet):
    farm = django_filters.UUIDFilter(field_name="planting__field__farm_id")
    field = django_filters.UUIDFilter(field_name="planting__field_id")
    planting = django_filters.UUIDFilter(field_name="planting_id")
    crop = django_filters.UUIDFilter(field_name="planting__crop_id")
    season = django_filters.CharFilter(field_name="planting__season")
    harvested_after = django_filters.DateFilter(field_name="harvested_on", lookup_expr="gte")
    harvested_before = django_filters.DateFilter(field_name="harvested_on", lookup_expr="lt")
    current = CurrentFilter()

    class Meta:
        model = Harvest
        fields: list[str] = []
