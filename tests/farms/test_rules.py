"""farms.rules: the farm rules the services and the sync push share (pure functions)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal

import pytest

from apikit.rules import RuleError
from farms import rules
from tests.farms.conftest import square

TODAY = dt.date(2026, 5, 1)
NOW = dt.datetime(2026, 5, 1, 12, 0, tzinfo=dt.UTC)


def _broken(rule: Callable[..., object], **kwargs: object) -> RuleError:
    """The error ``rule`` raises for ``kwargs``."""
    with pytest.raises(RuleError) as caught:
        rule(**kwargs)
    return caught.value


def test_time_zone_and_location() -> None:
    rules.farm_timezone_check(timezone="Africa/Nairobi")
    assert _broken(rules.farm_timezone_check, timezone="Mars/Olympus").field == "timezone"
    rules.farm_location_check(longitude=None, latitude=None)
    rules.farm_location_check(longitude=36.1, latitude=-0.3)
    error = _broken(rules.farm_location_check, longitude=36.1, latitude=None)
    assert (error.field, error.message) == ("location", rules.LOCATION_INCOMPLETE)


def test_boundary_columns_carry_the_area_and_bounding_box() -> None:
    columns = rules.field_boundary_columns(boundary=square(36.0, -0.3))
    assert set(columns) == {
        "boundary",
        "area_ha",
        "bbox_min_lon",
        "bbox_min_lat",
        "bbox_max_lon",
        "bbox_max_lat",
    }
    assert columns["area_ha"] > 100
    assert (columns["bbox_min_lon"], columns["bbox_max_lat"]) == (36.0, pytest.approx(-0.29))
    assert _broken(rules.field_boundary_columns, boundary={"type": "Point"}).field == "boundary"


def test_planting_dates() -> None:
    rules.planting_dates_check(planted_on=TODAY, expected_harvest_on=None)
    rules.planting_dates_check(planted_on=TODAY, expected_harvest_on=TODAY)
    error = _broken(
        rules.planting_dates_check, planted_on=TODAY, expected_harvest_on=TODAY - dt.timedelta(1)
    )
    assert error.field == "expected_harvest_on"


def test_observation_place_time_and_value() -> None:
    error = _broken(rules.observation_place_check, field_id=None, planting_id=None)
    assert (error.field, error.code) == ("field", "required")
    rules.observation_planting_check(field_id="f1", planting_field_id=None)
    rules.observation_planting_check(field_id="f1", planting_field_id="f1")
    assert (
        _broken(rules.observation_planting_check, field_id="f1", planting_field_id="f2").field
        == "planting"
    )
    rules.observation_time_check(observed_at=NOW + dt.timedelta(minutes=4), now=NOW)
    assert (
        _broken(
            rules.observation_time_check, observed_at=NOW + dt.timedelta(minutes=6), now=NOW
        ).field
        == "observed_at"
    )
    assert rules.observation_value(kind="pest", value=25, unit="%", text="") == (0.25, "ratio")
    assert (
        _broken(rules.observation_value, kind="rainfall", value=5, unit="furlongs", text="").field
        == "unit"
    )


def test_corrections() -> None:
    rules.correction_check(already_corrected=False)
    error = _broken(rules.correction_check, already_corrected=True)
    assert (error.field, error.code) == ("supersedes", "already_superseded")
    rules.observation_correction_check(field_id="f1", superseded_field_id="f1")
    assert (
        _broken(rules.observation_correction_check, field_id="f1", superseded_field_id="f2").message
        == rules.CORRECTION_OTHER_FIELD
    )
    assert (
        _broken(
            rules.harvest_correction_check, planting_id="p1", superseded_planting_id="p2"
        ).message
        == rules.CORRECTION_OTHER_PLANTING
    )


def test_harvest_rules() -> None:
    rules.harvest_planting_check(planting_status="growing")
    assert _broken(rules.harvest_planting_check, planting_status="planned").field == "planting"
    rules.harvest_date_check(harvested_on=TODAY, planted_on=TODAY)
    assert (
        _broken(
            rules.harvest_date_check, harvested_on=TODAY, planted_on=TODAY + dt.timedelta(1)
        ).field
        == "harvested_on"
    )
    rules.harvest_not_future_check(harvested_on=TODAY + dt.timedelta(days=1), today=TODAY)
    assert (
        _broken(
            rules.harvest_not_future_check, harvested_on=TODAY + dt.timedelta(days=2), today=TODAY
        ).message
        == rules.HARVEST_IN_FUTURE
    )


def test_harvest_quantities_are_grams_within_the_column() -> None:
    assert rules.harvest_quantity_check(quantity_kg=Decimal("12.3456")) == Decimal("12.346")
    assert rules.harvest_mass_kg(quantity=Decimal("1.5"), unit="t") == Decimal("1500.000")
    assert _broken(rules.harvest_mass_kg, quantity=Decimal(1), unit="bushel").field == "unit"
    # 10^8 t is 10^11 kg: one digit more than numeric(14, 3) holds before the point.
    too_much = _broken(rules.harvest_mass_kg, quantity=Decimal(10) ** 8, unit="t")
    assert (too_much.field, too_much.message) == ("quantity_kg", rules.QUANTITY_TOO_LARGE)
    assert (
        _broken(rules.harvest_quantity_check, quantity_kg=Decimal("99999999999.9999")).field
        == "quantity_kg"
    )
