"""Boundary validation (shapely) and geodesic area (pyproj) without the API."""

from __future__ import annotations

from typing import Any

import pytest

from farms import geometry
from farms.geometry import BoundaryError, boundary_parse
from tests.farms.conftest import square


def test_a_valid_square_has_its_geodesic_area_and_bbox() -> None:
    parsed = boundary_parse(square(36.05, -0.35))
    # 0.01° x 0.01° at the equator is ~1113 m x ~1106 m.
    assert parsed.area_ha == pytest.approx(123.1, abs=0.2)
    assert (parsed.min_lon, parsed.min_lat, parsed.max_lon, parsed.max_lat) == pytest.approx(
        (36.05, -0.35, 36.06, -0.34)
    )


def test_area_shrinks_with_latitude_and_ignores_ring_orientation() -> None:
    equator = boundary_parse(square(10.0, 0.0)).area_ha
    north = boundary_parse(square(10.0, 60.0)).area_ha
    assert north == pytest.approx(equator / 2, rel=0.01)  # cos(60°) = 0.5
    clockwise = square(10.0, 0.0)
    clockwise["coordinates"][0].reverse()
    assert boundary_parse(clockwise).area_ha == pytest.approx(equator)


def test_holes_are_subtracted_and_multipolygons_summed() -> None:
    outer = square(10.0, 0.0)["coordinates"][0]
    hole = square(10.002, 0.002, 0.002)["coordinates"][0]
    holed = boundary_parse({"type": "Polygon", "coordinates": [outer, hole]}).area_ha
    whole = boundary_parse(square(10.0, 0.0)).area_ha
    small = boundary_parse(square(10.002, 0.002, 0.002)).area_ha
    assert holed == pytest.approx(whole - small)
    multi = {
        "type": "MultiPolygon",
        "coordinates": [square(10.0, 0.0)["coordinates"], square(10.1, 0.0)["coordinates"]],
    }
    assert boundary_parse(multi).area_ha == pytest.approx(2 * whole, rel=1e-4)


def test_altitude_is_dropped() -> None:
    raw = square(1.0, 1.0)
    raw["coordinates"][0] = [[*position, 1500] for position in raw["coordinates"][0]]
    assert boundary_parse(raw).geojson == square(1.0, 1.0)


BOWTIE: dict[str, Any] = {
    "type": "Polygon",
    "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]],
}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("POLYGON((0 0, 1 1))", geometry.NOT_AN_OBJECT),
        ({"type": "Point", "coordinates": [0, 0]}, "not 'Point'"),
        ({"type": "Polygon"}, geometry.COORDINATES_MISSING),
        ({"type": "Polygon", "coordinates": []}, "has no rings"),
        ({"type": "MultiPolygon", "coordinates": []}, geometry.EMPTY_MULTIPOLYGON),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}, "at least 4 positions"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1]]]},
            "is not closed",
        ),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, "a"], [1, 1], [0, 0]]]}, "must be"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, True], [1, 1], [0, 0]]]}, "must be"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [181, 0], [1, 1], [0, 0]]]}, "Longitude"),
        ({"type": "Polygon", "coordinates": [[[0, 0], [1, -91], [1, 1], [0, 0]]]}, "Latitude"),
        (BOWTIE, "intersects itself near longitude 0.500000, latitude 0.500000"),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [2, 0], [0, 0]]]},
            "intersects itself",
        ),
        (
            {
                "type": "Polygon",
                "coordinates": [square(0, 0)["coordinates"][0], square(5, 5)["coordinates"][0]],
            },
            "not a valid area: Hole lies outside shell",
        ),
        (
            {"type": "Polygon", "coordinates": [[[-179, 0], [179, 0], [179, 1], [-179, 0]]]},
            "antimeridian",
        ),
        (
            {
                "type": "MultiPolygon",
                "coordinates": [square(0, 0)["coordinates"], square(0.005, 0)["coordinates"]],
            },
            "intersects itself",
        ),
    ],
)
def test_invalid_boundaries_are_refused_with_a_reason(raw: Any, message: str) -> None:
    with pytest.raises(BoundaryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        boundary_parse(raw)


def test_at_most_5000_vertices() -> None:
    def ring(n: int) -> list[list[float]]:
        import math

        points = [
            [
                round(math.cos(2 * math.pi * i / n) * 0.01, 9),
                round(math.sin(2 * math.pi * i / n) * 0.01, 9),
            ]
            for i in range(n)
        ]
        return [*points, points[0]]

    assert boundary_parse({"type": "Polygon", "coordinates": [ring(4999)]}).area_ha > 0
    with pytest.raises(BoundaryError, match="more than 5000 vertices"):
        boundary_parse({"type": "Polygon", "coordinates": [ring(5000)]})
