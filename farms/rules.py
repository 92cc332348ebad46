"""Farm domain rules, written once: the services, the API's input serializers and the sync push
(``farms/sync.py``) all call these.

Pure, keyword-only functions: no queries, no writes (the boundary geometry and the unit table
live in ``farms.geometry`` and ``farms.units``). Each returns the cleaned value (or nothing) or
raises ``RuleError`` naming the field in the domain's vocabulary (``planting``, ``supersedes``,
``location``); the callers turn it into a 400, a 409 or a rejected push row.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from typing import Any

from apikit.rules import RuleError
from farms.geometry import BoundaryError, boundary_parse
from farms.models import Planting
from farms.units import UnitError, mass_to_kg, observation_value_normalise

TIMEZONE_UNKNOWN = "Unknown time zone {value!r}; use an IANA name such as Africa/Nairobi."
LOCATION_INCOMPLETE = "Give both longitude and latitude, or neither."
DATES_ORDER = "The expected harvest date cannot be before the planting date."
FIELD_OR_PLANTING = "Give the field, the planting, or both."
PLANTING_NOT_IN_FIELD = "This planting is not on the given field."
OBSERVED_IN_FUTURE = "The observation time is in the future."
CORRECTION_OTHER_FIELD = "A correction must be on the same field as the row it supersedes."
CORRECTION_OTHER_PLANTING = "A correction must be for the same planting as the row it supersedes."
ALREADY_SUPERSEDED = "This row already has a correction; correct the newest row instead."
HARVEST_STATUS = (
    "Harvests can only be recorded for a growing or harvested planting (it is {status})."
)
HARVEST_BEFORE_PLANTING = "The harvest date cannot be before the planting date ({planted_on})."
HARVEST_IN_FUTURE = "The harvest date is in the future."
QUANTITY_TOO_LARGE = "At most 11 digits before the decimal point."

# Device clocks drift; a reading a few minutes "in the future" is still accepted.
CLOCK_SKEW = dt.timedelta(minutes=5)
HARVESTABLE = frozenset({Planting.Status.GROWING, Planting.Status.HARVESTED})
# farms_harvest.quantity_kg is numeric(14, 3): 11 digits before the point, grams after it.
_QUANTITY_DIGITS = 11
_GRAM = Decimal("0.001")


# --- farms and fields --------------------------------------------------------------------------


def farm_timezone_check(*, timezone: str) -> None:
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise RuleError("timezone", TIMEZONE_UNKNOWN.format(value=timezone)) from None


def farm_location_check(*, longitude: float | None, latitude: float | None) -> None:
    if (longitude is None) != (latitude is None):
        raise RuleError("location", LOCATION_INCOMPLETE)


def field_boundary_columns(*, boundary: Any) -> dict[str, Any]:
    """The boundary cleaned (a valid GeoJSON Polygon / MultiPolygon, 2D positions) with the
    columns computed from it: geodesic area in hectares and the bounding box."""
    try:
        parsed = boundary_parse(boundary)
    except BoundaryError as exc:
        raise RuleError("boundary", str(exc)) from None
    return {
        "boundary": parsed.geojson,
        "area_ha": parsed.area_ha,
        "bbox_min_lon": parsed.min_lon,
        "bbox_min_lat": parsed.min_lat,
        "bbox_max_lon": parsed.max_lon,
        "bbox_max_lat": parsed.max_lat,
    }


# --- plantings ---------------------------------------------------------------------------------


def planting_dates_check(*, planted_on: dt.date, expected_harvest_on: dt.date | None) -> None:
    if expected_harvest_on is not None and planted_on > expected_harvest_on:
        raise RuleError("expected_harvest_on", DATES_ORDER)


# --- observations (append-only) ----------------------------------------------------------------


def observation_place_check(*, field_id: Any, planting_id: Any) -> None:
    """An observation is of a field, a planting, or both (the field follows from the planting)."""
    if field_id is None and planting_id is None:
        raise RuleError("field", FIELD_OR_PLANTING, "required")


def observation_planting_check(*, field_id: Any, planting_field_id: Any) -> None:
    """The planting (if any; ``planting_field_id`` is its field) is on the observation's field."""
    if planting_field_id is not None and planting_field_id != field_id:
        raise RuleError("planting", PLANTING_NOT_IN_FIELD)


def observation_time_check(*, observed_at: dt.datetime, now: dt.datetime) -> None:
    if observed_at > now + CLOCK_SKEW:
        raise RuleError("observed_at", OBSERVED_IN_FUTURE)


def observation_value(
    *, kind: str, value: float | None, unit: str, text: str
) -> tuple[float | None, str]:
    """(value, unit) converted to the kind's canonical unit (``farms.units``), within its
    physically possible range."""
    try:
        return observation_value_normalise(kind=kind, value=value, unit=unit, text=text)
    except UnitError as exc:
        raise RuleError(exc.field, exc.message) from None


def observation_correction_check(*, field_id: Any, superseded_field_id: Any) -> None:
    if superseded_field_id != field_id:
        raise RuleError("supersedes", CORRECTION_OTHER_FIELD)


def correction_check(*, already_corrected: bool) -> None:
    """An observation or harvest is corrected (superseded) at most once: correct the newest."""
    if already_corrected:
        raise RuleError("supersedes", ALREADY_SUPERSEDED, "already_superseded")


# --- harvests (append-only) --------------------------------------------------------------------


def harvest_planting_check(*, planting_status: str) -> None:
    if planting_status not in HARVESTABLE:
        raise RuleError("planting", HARVEST_STATUS.format(status=planting_status))


def harvest_date_check(*, harvested_on: dt.date, planted_on: dt.date) -> None:
    if harvested_on < planted_on:
        raise RuleError("harvested_on", HARVEST_BEFORE_PLANTING.format(planted_on=planted_on))


def harvest_not_future_check(*, harvested_on: dt.date, today: dt.date) -> None:
    """A harvest is dated today at the latest (one day of slack for time zones)."""
    if harvested_on > today + dt.timedelta(days=1):
        raise RuleError("harvested_on", HARVEST_IN_FUTURE)


def harvest_mass_kg(*, quantity: Decimal, unit: str) -> Decimal:
    """A harvested mass in kilograms (``farms.units``), checked like ``quantity_kg``."""
    try:
        quantity_kg = mass_to_kg(quantity=quantity, unit=unit)
    except UnitError as exc:
        raise RuleError(exc.field, exc.message) from None
    return harvest_quantity_check(quantity_kg=quantity_kg)


def harvest_quantity_check(*, quantity_kg: Decimal) -> Decimal:
    """The harvested kilograms to the gram, within what the column holds (numeric(14, 3))."""
    quantity_kg = quantity_kg.quantize(_GRAM)
    if quantity_kg.adjusted() >= _QUANTITY_DIGITS:
        raise RuleError("quantity_kg", QUANTITY_TOO_LARGE)
    return quantity_kg


def harvest_correction_check(*, planting_id: Any, superseded_planting_id: Any) -> None:
    if superseded_planting_id != planting_id:
        raise RuleError("supersedes", CORRECTION_OTHER_PLANTING)
