"""Reads for the farm domain. Every list is scoped to the farms the user may see
(``apikit.policy``): tenant_admin sees every farm of the tenant, anyone else only farms granted
to them (``view`` or ``manage``). Archived farms hide everything under them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Count, Exists, OuterRef, QuerySet, Sum

from apikit.policy import AccessLevel, scope_to_containers, visible_containers
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting


def farm_list(*, user: Any, level: AccessLevel = AccessLevel.VIEW) -> QuerySet[Farm]:
    return visible_containers(user=user, container_model=Farm, level=level).filter(
        archived_at__isnull=True
    )


def _scoped(
    queryset: QuerySet[Any], *, user: Any, farm_path: str, level: AccessLevel
) -> QuerySet[Any]:
    active = queryset.filter(**{f"{farm_path}__archived_at__isnull": True})
    return scope_to_containers(
        active, user=user, container_field=farm_path, container_model=Farm, level=level
    )


def field_list(*, user: Any, level: AccessLevel = AccessLevel.VIEW) -> QuerySet[Field]:
    return _scoped(Field.objects.all(), user=user, farm_path="farm", level=level)


def crop_list() -> QuerySet[Crop]:
    # The catalogue is tenant-wide: every role that may view crops sees all of them.
    return Crop.objects.all()


def planting_list(*, user: Any, level: AccessLevel = AccessLevel.VIEW) -> QuerySet[Planting]:
    return _scoped(
        Planting.objects.filter(field__archived_at__isnull=True),
        user=user,
        farm_path="field__farm",
        level=level,
    )


def _live_corrections(model: type[Observation] | type[Harvest]) -> Exists:
    return Exists(model.objects.filter(supersedes=OuterRef("pk")))


def observation_list(*, user: Any, level: AccessLevel = AccessLevel.VIEW) -> QuerySet[Observation]:
    return _scoped(
        Observation.objects.filter(field__archived_at__isnull=True).annotate(
            is_superseded=_live_corrections(Observation)
        ),
        user=user,
        farm_path="field__farm",
        level=level,
    )


def harvest_list(*, user: Any, level: AccessLevel = AccessLevel.VIEW) -> QuerySet[Harvest]:
    return _scoped(
        Harvest.objects.filter(
            planting__archived_at__isnull=True, planting__field__archived_at__isnull=True
        ).annotate(is_superseded=_live_corrections(Harvest)),
        user=user,
        farm_path="planting__field__farm",
        level=level,
    )


def fields_in_bbox(
    queryset: QuerySet[Field], *, min_lon: float, min_lat: float, max_lon: float, max_lat: float
) -> QuerySet[Field]:
    """Fields whose bounding box intersects the given one (a cheap, index-backed pre-filter:
    a field can intersect the box by bbox without its polygon touching it)."""
    return queryset.filter(
        bbox_min_lon__lte=max_lon,
        bbox_max_lon__gte=min_lon,
        bbox_min_lat__lte=max_lat,
        bbox_max_lat__gte=min_lat,
    )


# --- aggregates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantingSummary:
    planting: Planting
    observation_counts: dict[str, int]
    latest: dict[str, dict[str, Any]]
    harvest_total_kg: Decimal
    harvest_count: int


def planting_summary(*, planting: Planting) -> PlantingSummary:
    """Three queries whatever the data size: counts by kind, the latest reading per kind
    (DISTINCT ON), and the harvest total. Superseded rows are left out (their correction counts)."""
    current_obs = Observation.objects.filter(planting=planting).exclude(
        _live_corrections(Observation)
    )
    counts = {
        row["kind"]: row["n"]
        for row in current_obs.order_by().values("kind").annotate(n=Count("id"))
    }
    latest_rows = (
        current_obs.order_by("kind", "-observed_at", "-id")
        .distinct("kind")
        .values("id", "kind", "observed_at", "value", "unit", "text")
    )
    latest = {row.pop("kind"): row for row in latest_rows}
    harvests = (
        Harvest.objects.filter(planting=planting)
        .exclude(_live_corrections(Harvest))
        .aggregate(total=Sum("quantity_kg"), n=Count("id"))
    )
    return PlantingSummary(
        planting=planting,
        observation_counts=counts,
        latest=latest,
        harvest_total_kg=harvests["total"] or Decimal(0),
        harvest_count=harvests["n"],
    )


@dataclass(frozen=True)
class FarmSummary:
    farm: Farm
    field_count: int
    area_ha: float
    plantings_by_status: dict[str, int]
    harvests: list[dict[str, Any]]


def farm_summary(*, farm: Farm) -> FarmSummary:
    """Three queries: fields and area, plantings by status, harvest totals by crop and season."""
    fields = Field.objects.filter(farm=farm).aggregate(n=Count("id"), area=Sum("area_ha"))
    plantings = Planting.objects.filter(field__farm=farm, field__archived_at__isnull=True)
    by_status = {
        row["status"]: row["n"]
        for row in plantings.order_by().values("status").annotate(n=Count("id"))
    }
    harvest_rows = (
        Harvest.objects.filter(
            planting__field__farm=farm,
            planting__archived_at__isnull=True,
            planting__field__archived_at__isnull=True,
        )
        .exclude(_live_corrections(Harvest))
        .values(
            "planting__crop_id",
            "planting__crop__name",
            "planting__crop__variety",
            "planting__season",
        )
        .annotate(total=Sum("quantity_kg"), n=Count("id"))
        .order_by("planting__crop__name", "planting__crop__variety", "planting__season")
    )
    harvests = [
        {
            "crop": {
                "id": row["planting__crop_id"],
                "name": row["planting__crop__name"],
                "variety": row["planting__crop__variety"],
            },
            "season": row["planting__season"],
            "quantity_kg": row["total"],
            "harvest_count": row["n"],
        }
        for row in harvest_rows
    ]
    return FarmSummary(
        farm=farm,
        field_count=fields["n"],
        area_ha=round(fields["area"] or 0.0, 4),
        plantings_by_status={status: by_status.get(status, 0) for status in Planting.Status.values},
        harvests=harvests,
    )


def farm_grants(*, farm: Farm) -> list[dict[str, Any]]:
    """Users holding a grant on ``farm`` with their strongest level (one query)."""
    from guardian.models import UserObjectPermission

    rows = (
        UserObjectPermission.objects.filter(
            object_pk=str(farm.pk),
            content_type__app_label="farms",
            content_type__model="farm",
            permission__codename__in=["view_farm", "manage_farm"],
        )
        .values("user_id", "user__email", "user__role", "permission__codename")
        .order_by("user__email")
    )
    grants: dict[uuid.UUID, dict[str, Any]] = {}
    for row in rows:
        entry = grants.setdefault(
            row["user_id"],
            {
                "user": row["user_id"],
                "email": row["user__email"],
                "role": row["user__role"],
                "level": AccessLevel.VIEW.value,
            },
        )
        if row["permission__codename"] == "manage_farm":
            entry["level"] = AccessLevel.MANAGE.value
    return list(grants.values())
