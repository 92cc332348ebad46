"""The fixed unit table: which units each observation kind accepts, how each converts to the
kind's canonical (SI or SI-derived) unit, and the physically possible range of a canonical value.

Values are stored canonically so that aggregates and exports never mix units; the unit a device
sent is converted on the way in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

UNIT_UNKNOWN = "Unknown unit {unit!r} for {kind}; use one of: {choices}."
VALUE_OUT_OF_RANGE = (
    "{value:g} {unit} is outside the possible range for {kind} ({low:g} to {high:g} {unit})."
)
VALUE_NOT_ALLOWED = "A {kind} observation has no numeric value; put it in text."
VALUE_OR_TEXT_REQUIRED = "Give a numeric value with its unit, or a text, or both."
UNIT_REQUIRED = "A numeric value needs its unit."
UNIT_WITHOUT_VALUE = "A unit was given without a value."
TEXT_REQUIRED = "A note needs a text."
MASS_UNIT_UNKNOWN = "Unknown mass unit {unit!r}; use one of: {choices}."


@dataclass(frozen=True)
class Quantity:
    """Accepted input units of one kind, converted to ``canonical``, within [low, high]."""

    canonical: str
    to_canonical: dict[str, Callable[[float], float]]
    low: float
    high: float


def _scale(factor: float) -> Callable[[float], float]:
    return lambda value: value * factor


_IDENTITY = _scale(1.0)

# Keys are Observation.Kind values (kept as strings so this table has no model import).
QUANTITIES: dict[str, Quantity] = {
    # Volumetric water content, m³ of water per m³ of soil: 0 (dry) to 1 (pure water).
    "soil_moisture": Quantity(
        canonical="m3/m3",
        to_canonical={"m3/m3": _IDENTITY, "%": _scale(0.01), "percent": _scale(0.01)},
        low=0.0,
        high=1.0,
    ),
    # Rainfall depth for one reading; the world record for one day is about 1,825 mm.
    "rainfall": Quantity(
        canonical="mm",
        to_canonical={"mm": _IDENTITY, "cm": _scale(10.0), "m": _scale(1000.0), "in": _scale(25.4)},
        low=0.0,
        high=2000.0,
    ),
    # Air or soil temperature in degrees Celsius (an SI derived unit); records are -89.2 / 56.7.
    "temperature": Quantity(
        canonical="degC",
        to_canonical={
            "degC": _IDENTITY,
            "°C": _IDENTITY,
            "C": _IDENTITY,
            "K": lambda value: value - 273.15,
            "degF": lambda value: (value - 32.0) * 5.0 / 9.0,
            "°F": lambda value: (value - 32.0) * 5.0 / 9.0,
            "F": lambda value: (value - 32.0) * 5.0 / 9.0,
        },
        low=-90.0,
        high=70.0,
    ),
    # Incidence or severity as a fraction of plants / leaf area (0..1).
    "pest": Quantity(
        canonical="ratio",
        to_canonical={"ratio": _IDENTITY, "%": _scale(0.01), "percent": _scale(0.01)},
        low=0.0,
        high=1.0,
    ),
    "disease": Quantity(
        canonical="ratio",
        to_canonical={"ratio": _IDENTITY, "%": _scale(0.01), "percent": _scale(0.01)},
        low=0.0,
        high=1.0,
    ),
    # The BBCH scale of phenological growth stages, 0 (germination) to 99 (harvested product).
    "growth_stage": Quantity(
        canonical="BBCH",
        to_canonical={"BBCH": _IDENTITY, "bbch": _IDENTITY},
        low=0.0,
        high=99.0,
    ),
}

TEXT_ONLY_KINDS = frozenset({"note"})

KG_PER_UNIT: dict[str, Decimal] = {
    "kg": Decimal(1),
    "g": Decimal("0.001"),
    "t": Decimal(1000),
    "lb": Decimal("0.45359237"),
}


class UnitError(ValueError):
    """A value/unit problem; ``field`` names the input field it belongs to."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def observation_value_normalise(
    *, kind: str, value: float | None, unit: str, text: str
) -> tuple[float | None, str]:
    """(canonical value, canonical unit) for an observation, or UnitError naming the field."""
    unit = unit.strip()
    if kind in TEXT_ONLY_KINDS:
        if value is not None:
            raise UnitError("value", VALUE_NOT_ALLOWED.format(kind=kind))
        if unit:
            raise UnitError("unit", UNIT_WITHOUT_VALUE)
        if not text.strip():
            raise UnitError("text", TEXT_REQUIRED)
        return None, ""
    if value is None:
        if unit:
            raise UnitError("unit", UNIT_WITHOUT_VALUE)
        if not text.strip():
            raise UnitError("value", VALUE_OR_TEXT_REQUIRED)
        return None, ""
    quantity = QUANTITIES[kind]
    if not unit:
        raise UnitError("unit", UNIT_REQUIRED)
    convert = quantity.to_canonical.get(unit)
    if convert is None:
        choices = ", ".join(quantity.to_canonical)
        raise UnitError("unit", UNIT_UNKNOWN.format(unit=unit, kind=kind, choices=choices))
    canonical = convert(value)
    # Rounding noise from conversions (e.g. 100 % -> 1.0000000000000002) is not out of range.
    canonical = round(canonical, 9)
    if not quantity.low <= canonical <= quantity.high:
        raise UnitError(
            "value",
            VALUE_OUT_OF_RANGE.format(
                value=canonical,
                unit=quantity.canonical,
                kind=kind,
                low=quantity.low,
                high=quantity.high,
            ),
        )
    return canonical, quantity.canonical


def mass_to_kg(*, quantity: Decimal, unit: str) -> Decimal:
    factor = KG_PER_UNIT.get(unit.strip())
    if factor is None:
        raise UnitError("unit", MASS_UNIT_UNKNOWN.format(unit=unit, choices=", ".join(KG_PER_UNIT)))
    return (quantity * factor).quantize(Decimal("0.001"))
