"""Writes for the farm domain. Each function validates the domain rules (field errors name the
input field, as a 400), owns its transaction and stamps who made the change."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from accounts.models import User
from apikit.concurrency import archive, versioned_update
from apikit.errors import APIError
from apikit.policy import (
    AccessLevel,
    container_access_grant,
    container_access_revoke,
    sees_everything,
)
from apikit.request_context import RequestContext
from audit.services import audit_permission_change
from farms.geometry import BoundaryError, boundary_parse
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from farms.units import UnitError, mass_to_kg, observation_value_normalise

TIMEZONE_UNKNOWN = "Unknown time zone {value!r}; use an IANA name such as Africa/Nairobi."
LOCATION_INCOMPLETE = "Give both longitude and latitude, or neither."
DATES_ORDER = "The expected harvest date cannot be before the planting date."
PLANTING_NOT_IN_FIELD = "This planting is not on the given field."
OBSERVED_IN_FUTURE = "The observation time is in the future."
HARVEST_STATUS = (
    "Harvests can only be recorded for a growing or harvested planting (it is {status})."
)
HARVEST_BEFORE_PLANTING = "The harvest date cannot be before the planting date ({planted_on})."
HARVEST_IN_FUTURE = "The harvest date is in the future."
CORRECTION_OTHER_FIELD = "A correction must be on the same field as the row it supersedes."
CORRECTION_OTHER_PLANTING = "A correction must be for the same planting as the row it supersedes."
ALREADY_SUPERSEDED = "This row already has a correction; correct the newest row instead."
GRANTEE_UNKNOWN = "No active user with this id in your organisation."
GRANTEE_ADMIN = "Tenant admins see every farm already; grants are for other roles."

# Device clocks drift; a reading a few minutes "in the future" is still accepted.
CLOCK_SKEW = dt.timedelta(minutes=5)


def _fail(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def _check_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _fail("timezone", TIMEZONE_UNKNOWN.format(value=value)) from None


def _check_location(longitude: float | None, latitude: float | None) -> None:
    if (longitude is None) != (latitude is None):
        raise _fail("location", LOCATION_INCOMPLETE)


# --- farms -------------------------------------------------------------------------------------


@transaction.atomic
def farm_create(
    *,
    name: str,
    region: str = "",
    longitude: float | None = None,
    latitude: float | None = None,
    timezone_name: str = "UTC",
    actor: Any,
) -> Farm:
    """Create a farm. A creator who is not tenant_admin gets ``manage`` on it, or they could
    not see what they just made."""
    _check_timezone(timezone_name)
    _check_location(longitude, latitude)
    farm = Farm.objects.create(
        name=name,
        region=region,
        longitude=longitude,
        latitude=latitude,
        timezone=timezone_name,
        created_by=actor,
        updated_by=actor,
    )
    if not sees_everything(actor):
        container_access_grant(user=actor, container=farm, level=AccessLevel.MANAGE)
    return farm


def farm_update(*, farm: Farm, expected_version: int, changes: dict[str, Any], actor: Any) -> Farm:
    if "timezone" in changes:
        _check_timezone(changes["timezone"])
    longitude = changes.get("longitude", farm.longitude)
    latitude = changes.get("latitude", farm.latitude)
    _check_location(longitude, latitude)
    return versioned_update(
        instance=farm, expected_version=expected_version, changes=changes, actor=actor
    )


def farm_archive(*, farm: Farm, expected_version: int, actor: Any) -> Farm:
    """Soft delete: the farm and everything under it leave every list; rows are kept."""
    return archive(instance=farm, expected_version=expected_version, actor=actor)


@transaction.atomic
def farm_access_grant(
    *, farm: Farm, user_id: Any, level: AccessLevel, context: RequestContext | None
) -> User:
    """Grant ``level`` on ``farm``; ``manage`` also grants ``view``. Audited as a permission
    change."""
    grantee = User.objects.filter(pk=user_id, is_active=True).first()
    if grantee is None:
        raise _fail("user", GRANTEE_UNKNOWN)
    if sees_everything(grantee):
        raise _fail("user", GRANTEE_ADMIN)
    container_access_grant(user=grantee, container=farm, level=AccessLevel.VIEW)
    if level == AccessLevel.MANAGE:
        container_access_grant(user=grantee, container=farm, level=AccessLevel.MANAGE)
    audit_permission_change(context=context, container=farm, user=grantee, change=f"grant:{level}")
    return grantee


@transaction.atomic
def farm_access_revoke(
    *, farm: Farm, user_id: Any, level: AccessLevel | None, context: RequestContext | None
) -> bool:
    """Revoke ``level`` (``view`` revokes everything; ``None`` too). False if there was no
    such user."""
    grantee = User.objects.filter(pk=user_id).first()
    if grantee is None:
        return False
    container_access_revoke(user=grantee, container=farm, level=AccessLevel.MANAGE)
    if level != AccessLevel.MANAGE:
        container_access_revoke(user=grantee, container=farm, level=AccessLevel.VIEW)
    audit_permission_change(
        context=context, container=farm, user=grantee, change=f"revoke:{level or 'all'}"
    )
    return True


# --- fields ------------------------------------------------------------------------------------


def _boundary_columns(raw: Any) -> dict[str, Any]:
    try:
        parsed = boundary_parse(raw)
    except BoundaryError as exc:
        raise _fail("boundary", str(exc)) from None
    return {
        "boundary": parsed.geojson,
        "area_ha": parsed.area_ha,
        "bbox_min_lon": parsed.min_lon,
        "bbox_min_lat": parsed.min_lat,
        "bbox_max_lon": parsed.max_lon,
        "bbox_max_lat": parsed.max_lat,
    }


@transaction.atomic
def field_create(*, farm: Farm, name: str, boundary: Any, actor: Any) -> Field:
    return Field.objects.create(
        farm=farm, name=name, created_by=actor, updated_by=actor, **_boundary_columns(boundary)
    )


def field_update(
    *, field: Field, expected_version: int, changes: dict[str, Any], actor: Any
) -> Field:
    changes = dict(changes)
    if "boundary" in changes:
        changes.update(_boundary_columns(changes.pop("boundary")))
    return versioned_update(
        instance=field, expected_version=expected_version, changes=changes, actor=actor
    )


def field_archive(*, field: Field, expected_version: int, actor: Any) -> Field:
    return archive(instance=field, expected_version=expected_version, actor=actor)


# --- crops -------------------------------------------------------------------------------------

CROP_DUPLICATE = "The catalogue already has this crop and variety."


def crop_create(*, name: str, variety: str, category: str, actor: Any) -> Crop:
    try:
        with transaction.atomic():
            return Crop.objects.create(
                name=name, variety=variety, category=category, created_by=actor, updated_by=actor
            )
    except IntegrityError:
        raise _fail("name", CROP_DUPLICATE) from None


def crop_update(*, crop: Crop, expected_version: int, changes: dict[str, Any], actor: Any) -> Crop:
    try:
        with transaction.atomic():
            return versioned_update(
                instance=crop, expected_version=expected_version, changes=changes, actor=actor
            )
    except IntegrityError:
        raise _fail("name", CROP_DUPLICATE) from None


def crop_archive(*, crop: Crop, expected_version: int, actor: Any) -> Crop:
    return archive(instance=crop, expected_version=expected_version, actor=actor)


# --- plantings ---------------------------------------------------------------------------------


def _check_dates(planted_on: dt.date, expected_harvest_on: dt.date | None) -> None:
    if expected_harvest_on is not None and planted_on > expected_harvest_on:
        raise _fail("expected_harvest_on", DATES_ORDER)


@transaction.atomic
def planting_create(
    *,
    field: Field,
    crop: Crop,
    season: str,
    planted_on: dt.date,
    expected_harvest_on: dt.date | None = None,
    status: str = Planting.Status.PLANNED,
    actor: Any,
) -> Planting:
    _check_dates(planted_on, expected_harvest_on)
    return Planting.objects.create(
        field=field,
        crop=crop,
        season=season,
        planted_on=planted_on,
        expected_harvest_on=expected_harvest_on,
        status=status,
        created_by=actor,
        updated_by=actor,
    )


def planting_update(
    *, planting: Planting, expected_version: int, changes: dict[str, Any], actor: Any
) -> Planting:
    _check_dates(
        changes.get("planted_on", planting.planted_on),
        changes.get("expected_harvest_on", planting.expected_harvest_on),
    )
    return versioned_update(
        instance=planting, expected_version=expected_version, changes=changes, actor=actor
    )


def planting_archive(*, planting: Planting, expected_version: int, actor: Any) -> Planting:
    return archive(instance=planting, expected_version=expected_version, actor=actor)


# --- observations and harvests (append-only) ---------------------------------------------------


def _already_superseded() -> APIError:
    return APIError(status=409, code="already_superseded", detail=ALREADY_SUPERSEDED)


R = TypeVar("R", Observation, Harvest)


def _append(model: type[R], *, supersedes: R | None, actor: Any, **values: Any) -> R:
    """Insert one append-only row; a row may be corrected (superseded) only once."""
    try:
        with transaction.atomic():
            if supersedes is not None and supersedes.corrections.exists():
                raise _already_superseded()
            return model.objects.create(
                supersedes=supersedes,
                recorded_by=actor,
                created_by=actor,
                updated_by=actor,
                **values,
            )
    except IntegrityError:
        # Two corrections of one row raced; the partial unique index let one win.
        raise _already_superseded() from None


def observation_record(
    *,
    field: Field,
    planting: Planting | None,
    observed_at: dt.datetime,
    kind: str,
    value: float | None,
    unit: str,
    text: str,
    device_id: str,
    supersedes: Observation | None,
    actor: Any,
) -> Observation:
    """Append one observation. A correction names the row it ``supersedes`` (same field); the
    older row stays, marked superseded in reads."""
    if planting is not None and planting.field_id != field.pk:
        raise _fail("planting", PLANTING_NOT_IN_FIELD)
    if observed_at > timezone.now() + CLOCK_SKEW:
        raise _fail("observed_at", OBSERVED_IN_FUTURE)
    try:
        canonical, canonical_unit = observation_value_normalise(
            kind=kind, value=value, unit=unit, text=text
        )
    except UnitError as exc:
        raise _fail(exc.field, exc.message) from None
    if supersedes is not None and supersedes.field_id != field.pk:
        raise _fail("supersedes", CORRECTION_OTHER_FIELD)
    return _append(
        Observation,
        supersedes=supersedes,
        actor=actor,
        field=field,
        planting=planting,
        observed_at=observed_at,
        kind=kind,
        value=canonical,
        unit=canonical_unit,
        text=text,
        device_id=device_id,
    )


def observation_archive(*, observation: Observation, actor: Any) -> Observation:
    """Soft delete (data-quality clean-up by tenant_admin / agronomist with manage)."""
    return archive(instance=observation, expected_version=observation.version, actor=actor)


def harvest_record(
    *,
    planting: Planting,
    harvested_on: dt.date,
    quantity: Decimal,
    unit: str,
    grade: str,
    supersedes: Harvest | None,
    actor: Any,
) -> Harvest:
    if planting.status not in (Planting.Status.GROWING, Planting.Status.HARVESTED):
        raise _fail("planting", HARVEST_STATUS.format(status=planting.status))
    if harvested_on < planting.planted_on:
        raise _fail("harvested_on", HARVEST_BEFORE_PLANTING.format(planted_on=planting.planted_on))
    if harvested_on > timezone.localdate() + dt.timedelta(days=1):
        raise _fail("harvested_on", HARVEST_IN_FUTURE)
    try:
        quantity_kg = mass_to_kg(quantity=quantity, unit=unit)
    except UnitError as exc:
        raise _fail(exc.field, exc.message) from None
    if supersedes is not None and supersedes.planting_id != planting.pk:
        raise _fail("supersedes", CORRECTION_OTHER_PLANTING)
    return _append(
        Harvest,
        supersedes=supersedes,
        actor=actor,
        planting=planting,
        harvested_on=harvested_on,
        quantity_kg=quantity_kg,
        grade=grade,
    )


def harvest_archive(*, harvest: Harvest, actor: Any) -> Harvest:
    return archive(instance=harvest, expected_version=harvest.version, actor=actor)
