"""Field boundaries: GeoJSON (RFC 7946) Polygon / MultiPolygon validation with shapely, geodesic
area with pyproj on the WGS84 ellipsoid, and the bounding box kept for ``?bbox=`` queries.

Coordinates are [longitude, latitude]; a third (altitude) number is accepted and dropped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from pyproj import Geod
from shapely.geometry import MultiPolygon, Polygon, shape
from shapely.geometry.polygon import orient
from shapely.validation import explain_validity

MAX_VERTICES = 5000

NOT_AN_OBJECT = "The boundary must be a GeoJSON geometry object."
WRONG_TYPE = "The boundary must be a GeoJSON Polygon or MultiPolygon, not {type!r}."
COORDINATES_MISSING = "The boundary has no coordinates array."
BAD_POSITION = "Position {path} must be [longitude, latitude] numbers."
LONGITUDE_RANGE = "Longitude {value} at {path} is outside -180..180."
LATITUDE_RANGE = "Latitude {value} at {path} is outside -90..90."
RING_TOO_SHORT = "Ring {path} needs at least 4 positions (a closed triangle)."
RING_NOT_CLOSED = "Ring {path} is not closed: its last position must equal its first."
EMPTY_POLYGON = "Polygon {path} has no rings."
EMPTY_MULTIPOLYGON = "The MultiPolygon has no polygons."
TOO_MANY_VERTICES = "The boundary has more than {limit} vertices; simplify it."
INVALID_GEOMETRY = "The boundary is not a valid area: {reason}."
SELF_INTERSECTION = "The boundary intersects itself near longitude {lon:.6f}, latitude {lat:.6f}."
ZERO_AREA = "The boundary encloses no area."
CROSSES_ANTIMERIDIAN = (
    "The boundary spans more than 180 degrees of longitude; fields crossing the antimeridian "
    "are not supported."
)

_GEOD = Geod(ellps="WGS84")


class BoundaryError(ValueError):
    pass


@dataclass(frozen=True)
class Boundary:
    geojson: dict[str, Any]
    area_ha: float
    min_lon: float
    min_lat: float
    max_lon: float
    max_lat: float


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class _Counter:
    def __init__(self) -> None:
        self.vertices = 0


def _position(raw: Any, path: str, counter: _Counter) -> list[float]:
    if not isinstance(raw, list) or len(raw) not in (2, 3) or not all(_number(v) for v in raw):
        raise BoundaryError(BAD_POSITION.format(path=path))
    lon, lat = float(raw[0]), float(raw[1])
    if not -180.0 <= lon <= 180.0:
        raise BoundaryError(LONGITUDE_RANGE.format(value=raw[0], path=path))
    if not -90.0 <= lat <= 90.0:
        raise BoundaryError(LATITUDE_RANGE.format(value=raw[1], path=path))
    counter.vertices += 1
    if counter.vertices > MAX_VERTICES:
        raise BoundaryError(TOO_MANY_VERTICES.format(limit=MAX_VERTICES))
    return [lon, lat]


def _ring(raw: Any, path: str, counter: _Counter) -> list[list[float]]:
    if not isinstance(raw, list):
        raise BoundaryError(BAD_POSITION.format(path=path))
    positions = [_position(item, f"{path}[{i}]", counter) for i, item in enumerate(raw)]
    if len(positions) < 4:
        raise BoundaryError(RING_TOO_SHORT.format(path=path))
    if positions[0] != positions[-1]:
        raise BoundaryError(RING_NOT_CLOSED.format(path=path))
    return positions


def _polygon(raw: Any, path: str, counter: _Counter) -> list[list[list[float]]]:
    if not isinstance(raw, list):
        raise BoundaryError(BAD_POSITION.format(path=path))
    if not raw:
        raise BoundaryError(EMPTY_POLYGON.format(path=path))
    return [_ring(ring, f"{path}[{i}]", counter) for i, ring in enumerate(raw)]


def boundary_parse(raw: Any) -> Boundary:
    """Validate a GeoJSON boundary; returns it cleaned (2D positions) with its area and bbox.

    Raises BoundaryError with a message for the client on anything that is not a valid,
    non-empty, non-self-intersecting Polygon / MultiPolygon of at most MAX_VERTICES vertices.
    """
    if not isinstance(raw, dict):
        raise BoundaryError(NOT_AN_OBJECT)
    kind = raw.get("type")
    if kind not in ("Polygon", "MultiPolygon"):
        raise BoundaryError(WRONG_TYPE.format(type=kind))
    coordinates = raw.get("coordinates")
    if not isinstance(coordinates, list):
        raise BoundaryError(COORDINATES_MISSING)
    counter = _Counter()
    if kind == "Polygon":
        cleaned: list[Any] = _polygon(coordinates, "coordinates", counter)
    else:
        if not coordinates:
            raise BoundaryError(EMPTY_MULTIPOLYGON)
        cleaned = [
            _polygon(polygon, f"coordinates[{i}]", counter) for i, polygon in enumerate(coordinates)
        ]
    geojson = {"type": kind, "coordinates": cleaned}
    geometry = shape(geojson)
    if not geometry.is_valid:
        reason = explain_validity(geometry)
        if reason.startswith(("Self-intersection", "Ring Self-intersection")):
            point = reason[reason.find("[") + 1 : reason.find("]")].split()
            raise BoundaryError(SELF_INTERSECTION.format(lon=float(point[0]), lat=float(point[1])))
        raise BoundaryError(INVALID_GEOMETRY.format(reason=reason))
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    if max_lon - min_lon > 180.0:
        raise BoundaryError(CROSSES_ANTIMERIDIAN)
    area_ha = geodesic_area_ha(geometry)
    if area_ha <= 0.0:
        raise BoundaryError(ZERO_AREA)
    return Boundary(geojson, area_ha, min_lon, min_lat, max_lon, max_lat)


def geodesic_area_ha(geometry: Polygon | MultiPolygon | Any) -> float:
    """Area on the WGS84 ellipsoid in hectares. Rings are oriented first (exterior
    counter-clockwise, holes clockwise) so holes are subtracted whatever order the client sent."""
    if isinstance(geometry, MultiPolygon):
        return sum(geodesic_area_ha(polygon) for polygon in geometry.geoms)
    area_m2, _perimeter = _GEOD.geometry_area_perimeter(orient(geometry, sign=1.0))
    return abs(area_m2) / 10_000.0
