"""The fixed unit table: canonical storage and physical ranges per observation kind."""

from __future__ import annotations

from decimal import Decimal

import pytest

from farms.units import UnitError, mass_to_kg, observation_value_normalise


@pytest.mark.parametrize(
    ("kind", "value", "unit", "expected"),
    [
        ("soil_moisture", 31.0, "%", (0.31, "m3/m3")),
        ("soil_moisture", 0.2, "m3/m3", (0.2, "m3/m3")),
        ("rainfall", 1.0, "in", (25.4, "mm")),
        ("rainfall", 2.0, "cm", (20.0, "mm")),
        ("temperature", 300.15, "K", (27.0, "degC")),
        ("temperature", 104.0, "degF", (40.0, "degC")),
        ("pest", 100.0, "%", (1.0, "ratio")),
        ("growth_stage", 65.0, "BBCH", (65.0, "BBCH")),
    ],
)
def test_values_are_stored_in_the_canonical_unit(
    kind: str, value: float, unit: str, expected: tuple[float, str]
) -> None:
    canonical, canonical_unit = observation_value_normalise(
        kind=kind, value=value, unit=unit, text=""
    )
    assert canonical == pytest.approx(expected[0])
    assert canonical_unit == expected[1]


@pytest.mark.parametrize(
    ("kind", "value", "unit", "text", "field"),
    [
        ("soil_moisture", 120.0, "%", "", "value"),
        ("soil_moisture", -0.1, "m3/m3", "", "value"),
        ("rainfall", -1.0, "mm", "", "value"),
        ("rainfall", 3000.0, "mm", "", "value"),
        ("temperature", 80.0, "degC", "", "value"),
        ("temperature", -100.0, "degC", "", "value"),
        ("temperature", 10.0, "K", "", "value"),
        ("growth_stage", 100.0, "BBCH", "", "value"),
        ("pest", 1.5, "ratio", "", "value"),
        ("rainfall", 3.0, "furlongs", "", "unit"),
        ("rainfall", 3.0, "", "", "unit"),
        ("rainfall", None, "mm", "", "unit"),
        ("rainfall", None, "", "", "value"),
        ("note", 1.0, "", "x", "value"),
        ("note", None, "mm", "x", "unit"),
        ("note", None, "", "  ", "text"),
    ],
)
def test_impossible_values_name_the_field(
    kind: str, value: float | None, unit: str, text: str, field: str
) -> None:
    with pytest.raises(UnitError) as caught:
        observation_value_normalise(kind=kind, value=value, unit=unit, text=text)
    assert caught.value.field == field


def test_text_alone_is_enough_for_a_pest_sighting() -> None:
    assert observation_value_normalise(kind="pest", value=None, unit="", text="aphids") == (
        None,
        "",
    )


def test_masses_convert_to_kilograms() -> None:
    assert mass_to_kg(quantity=Decimal("1.5"), unit="t") == Decimal("1500.000")
    assert mass_to_kg(quantity=Decimal(2), unit="lb") == Decimal("0.907")
    with pytest.raises(UnitError):
        mass_to_kg(quantity=Decimal(1), unit="bushel")
