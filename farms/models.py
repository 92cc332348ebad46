"""Farm domain models: farms (the containers of guardian grants), fields with GeoJSON boundaries,
the tenant's crop catalogue, plantings, observations and harvests.

Observations and harvests are append-only records: a correction is a new row whose
``supersedes`` points at the row it replaces (docs/farms.md).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from apikit.models import TenantModel


class Farm(TenantModel):
    """The container: ``view`` / ``manage`` grants on a farm cover everything under it."""

    name = models.CharField(max_length=200)
    region = models.CharField(max_length=200, blank=True)
    # The farm's point location (WGS84); the API exposes it as a GeoJSON Point.
    longitude = models.FloatField(null=True, blank=True)
    latitude = models.FloatField(null=True, blank=True)
    # IANA zone: "today" for a farm, and dates shown to its people, are in this zone.
    timezone = models.CharField(max_length=64, default="UTC")

    class Meta:
        permissions = [("manage_farm", "Can manage the farm and everything under it")]
        indexes = [models.Index(fields=["name"], name="farms_farm_name")]
        constraints = [
            models.CheckConstraint(
                condition=Q(longitude__isnull=True, latitude__isnull=True)
                | Q(
                    longitude__gte=-180,
                    longitude__lte=180,
                    latitude__gte=-90,
                    latitude__lte=90,
                ),
                name="farms_farm_location_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Field(TenantModel):
    """A plot with a GeoJSON Polygon / MultiPolygon boundary (WGS84, validated on write).

    ``area_ha`` is computed on the server (geodesic, WGS84 ellipsoid) and the bounding box is
    kept in four indexed float columns for ``?bbox=`` queries, so no PostGIS is needed.
    """

    farm = models.ForeignKey(Farm, on_delete=models.PROTECT, related_name="fields")
    name = models.CharField(max_length=200)
    boundary = models.JSONField()
    area_ha = models.FloatField()
    bbox_min_lon = models.FloatField()
    bbox_min_lat = models.FloatField()
    bbox_max_lon = models.FloatField()
    bbox_max_lat = models.FloatField()

    class Meta:
        indexes = [
            # A bbox query compares each column with a constant; these two pairs let PostgreSQL
            # combine index scans (BitmapAnd) instead of reading every field of the tenant.
            models.Index(fields=["bbox_min_lon", "bbox_max_lon"], name="farms_field_bbox_lon"),
            models.Index(fields=["bbox_min_lat", "bbox_max_lat"], name="farms_field_bbox_lat"),
            models.Index(fields=["farm", "name"], name="farms_field_farm_name"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(bbox_min_lon__lte=models.F("bbox_max_lon"))
                & Q(bbox_min_lat__lte=models.F("bbox_max_lat")),
                name="farms_field_bbox_ordered",
            ),
            models.CheckConstraint(condition=Q(area_ha__gte=0), name="farms_field_area"),
        ]

    def __str__(self) -> str:
        return self.name


class Crop(TenantModel):
    """The tenant's crop catalogue (shared by all its farms)."""

    class Category(models.TextChoices):
        CEREAL = "cereal", "Cereal"
        LEGUME = "legume", "Legume"
        VEGETABLE = "vegetable", "Vegetable"
        FRUIT = "fruit", "Fruit"
        ROOT_TUBER = "root_tuber", "Root or tuber"
        OILSEED = "oilseed", "Oilseed"
        FODDER = "fodder", "Fodder"
        BEVERAGE = "beverage", "Beverage (coffee, tea, cocoa)"
        OTHER = "other", "Other"

    name = models.CharField(max_length=120)
    variety = models.CharField(max_length=120, blank=True)
    category = models.CharField(max_length=20, choices=Category.choices, default=Category.OTHER)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["name", "variety"],
                condition=Q(archived_at__isnull=True),
                name="farms_crop_name_variety_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.variety})" if self.variety else self.name


class Planting(TenantModel):
    class Status(models.TextChoices):
        PLANNED = "planned", "Planned"
        GROWING = "growing", "Growing"
        HARVESTED = "harvested", "Harvested"
        FAILED = "failed", "Failed"

    field = models.ForeignKey(Field, on_delete=models.PROTECT, related_name="plantings")
    crop = models.ForeignKey(Crop, on_delete=models.PROTECT, related_name="plantings")
    # A free label such as "2026 long rains" or "2026/27 winter".
    season = models.CharField(max_length=60)
    planted_on = models.DateField()
    expected_harvest_on = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PLANNED)

    class Meta:
        indexes = [
            models.Index(fields=["field", "season"], name="farms_planting_field_season"),
            models.Index(fields=["status"], name="farms_planting_status"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(expected_harvest_on__isnull=True)
                | Q(planted_on__lte=models.F("expected_harvest_on")),
                name="farms_planting_dates_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.crop_id} on {self.field_id} ({self.season})"


class Observation(TenantModel):
    """One reading or note on a field (optionally about one planting). Append-only.

    ``value`` is stored in the kind's canonical unit (``farms.units``); ``unit`` names it.
    """

    class Kind(models.TextChoices):
        SOIL_MOISTURE = "soil_moisture", "Soil moisture"
        RAINFALL = "rainfall", "Rainfall"
        TEMPERATURE = "temperature", "Temperature"
        PEST = "pest", "Pest"
        DISEASE = "disease", "Disease"
        GROWTH_STAGE = "growth_stage", "Growth stage"
        NOTE = "note", "Note"

    field = models.ForeignKey(Field, on_delete=models.PROTECT, related_name="observations")
    planting = models.ForeignKey(
        Planting,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="observations",
    )
    observed_at = models.DateTimeField()
    kind = models.CharField(max_length=20, choices=Kind.choices)
    value = models.FloatField(null=True, blank=True)
    unit = models.CharField(max_length=16, blank=True)
    text = models.TextField(blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    device_id = models.CharField(max_length=100, blank=True)
    # A correction points at the row it replaces; each row has at most one live correction.
    supersedes = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="corrections",
    )

    class Meta:
        indexes = [
            models.Index(fields=["field", "observed_at"], name="farms_obs_field_time"),
            models.Index(fields=["planting", "kind", "observed_at"], name="farms_obs_plant_kind"),
            models.Index(fields=["kind", "observed_at"], name="farms_obs_kind_time"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(value__isnull=True, unit="") | (Q(value__isnull=False) & ~Q(unit="")),
                name="farms_obs_value_has_unit",
            ),
            models.CheckConstraint(
                condition=Q(value__isnull=False) | ~Q(text=""),
                name="farms_obs_value_or_text",
            ),
            models.UniqueConstraint(
                fields=["supersedes"],
                condition=Q(archived_at__isnull=True),
                name="farms_obs_one_live_correction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} at {self.observed_at:%Y-%m-%d %H:%M}"


class Harvest(TenantModel):
    """A harvest of one planting, in kilograms. Append-only like observations."""

    planting = models.ForeignKey(Planting, on_delete=models.PROTECT, related_name="harvests")
    harvested_on = models.DateField()
    quantity_kg = models.DecimalField(max_digits=14, decimal_places=3)
    grade = models.CharField(max_length=40, blank=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    supersedes = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="corrections",
    )

    class Meta:
        indexes = [
            models.Index(fields=["planting", "harvested_on"], name="farms_harvest_plant_date"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(quantity_kg__gte=0), name="farms_harvest_qty"),
            models.UniqueConstraint(
                fields=["supersedes"],
                condition=Q(archived_at__isnull=True),
                name="farms_harvest_one_live_correction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity_kg} kg on {self.harvested_on}"
