"""Writes for the farm domain. Each function checks the domain rules (``farms.rules``, which the
sync push calls too; field errors name the input field, as a 400), owns its transaction and
stamps who made the change."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

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
from apikit.rules import RuleError
from audit.services import audit_permission_change
from farms import rules
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting

GRANTEE_UNKNOWN = "No active user with this id in your organisation."
GRANTEE_ADMIN = "Tenant admins see every farm already; grants are for other roles."

P = ParamSpec("P")
T = TypeVar("T")


def _fail(field: str, message: str) -> ValidationError:
    return ValidationError({field: [message]})


def _check(rule: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a domain rule; a broken rule is a 400 naming its field."""
    try:
        return rule(*args, **kwargs)
    except RuleError as exc:
        raise exc.as_validation_error() from None


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
    _check(rules.farm_timezone_check, timezone=timezone_name)
    _check(rules.farm_location_check, longitude=longitude, latitude=latitude)
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
        _check(rules.farm_timezone_check, timezone=changes["timezone"])
    _check(
        rules.farm_location_check,
        longitude=changes.get("longitude", farm.longitude),
        latitude=changes.get("latitude", farm.latitude),
    )
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


@transaction.atomic
def field_create(*, farm: Farm, name: str, boundary: Any, actor: Any) -> Field:
    columns = _check(rules.field_boundary_columns, boundary=boundary)
    return Field.objects.create(farm=farm, name=name, created_by=actor, updated_by=actor, **columns)


def field_update(
    *, field: Field, expected_version: int, changes: dict[str, Any], actor: Any
) -> Field:
    changes = dict(changes)
    if "boundary" in changes:
        changes.update(_check(rules.field_boundary_columns, boundary=changes.pop("boundary")))
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
    _check(
        rules.planting_dates_check, planted_on=planted_on, expected_harvest_on=expected_harvest_on
    )
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
    _check(
        rules.planting_dates_check,
        planted_on=changes.get("planted_on", planting.planted_on),
        expected_harvest_on=changes.get("expected_harvest_on", planting.expected_harvest_on),
    )
    return versioned_update(
        instance=planting, expected_version=expected_version, changes=changes, actor=actor
    )


def planting_archive(*, planting: Planting, expected_version: int, actor: Any) -> Planting:
    return archive(instance=planting, expected_version=expected_version, actor=actor)


# --- observations and harvests (append-only) ---------------------------------------------------


def _already_superseded() -> APIError:
    return APIError(status=409, code="already_superseded", detail=rules.ALREADY_SUPERSEDED)


R = TypeVar("R", Observation, Harvest)


def _append(model: type[R], *, supersedes: R | None, actor: Any, **values: Any) -> R:
    """Insert one append-only row; a row may be corrected (superseded) only once."""
    try:
        with transaction.atomic():
            if supersedes is not None:
                try:
                    rules.correction_check(already_corrected=supersedes.corrections.exists())
                except RuleError:
                    raise _already_superseded() from None
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
    planting_field_id = planting.field_id if planting is not None else None
    _check(rules.observation_planting_check, field_id=field.pk, planting_field_id=planting_field_id)
    _check(rules.observation_time_check, observed_at=observed_at, now=timezone.now())
    canonical, canonical_unit = _check(
        rules.observation_value, kind=kind, value=value, unit=unit, text=text
    )
    if supersedes is not None:
        _check(
            rules.observation_correction_check,
            field_id=field.pk,
            superseded_field_id=supersedes.field_id,
        )
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
    _check(rules.harvest_planting_check, planting_status=planting.status)
    _check(rules.harvest_date_check, harvested_on=harvested_on, planted_on=planting.planted_on)
    _check(rules.harvest_not_future_check, harvested_on=harvested_on, today=timezone.localdate())
    quantity_kg = _check(rules.harvest_mass_kg, quantity=quantity, unit=unit)
    if supersedes is not None:
        _check(
            rules.harvest_correction_check,
            planting_id=planting.pk,
            superseded_planting_id=supersedes.planting_id,
        )
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
