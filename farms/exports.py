"""Streamed exports (fields as a GeoJSON FeatureCollection, observations as CSV).

Rows come from a server-side cursor in chunks (``QuerySet.iterator(chunk_size=...)``) and are
written out in ~64 KiB pieces, so memory stays flat however many rows there are. The generators
run after the view has returned, so they switch to the request's tenant schema themselves
(``in_tenant``) instead of trusting whatever schema the connection holds by then.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django_tenants.utils import tenant_context

CHUNK_ROWS = 2000
FLUSH_BYTES = 64 * 1024

OBSERVATION_CSV_COLUMNS = [
    "id",
    "farm",
    "field",
    "planting",
    "observed_at",
    "kind",
    "value",
    "unit",
    "text",
    "recorded_by",
    "device_id",
    "supersedes",
    "is_superseded",
]

# Spreadsheets run cells starting with these as formulas (CSV injection).
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def in_tenant(tenant: Any, chunks: Iterable[str]) -> Iterator[bytes]:
    with tenant_context(tenant):
        for chunk in chunks:
            yield chunk.encode()


def _flushed(pieces: Iterable[str]) -> Iterator[str]:
    buffer: list[str] = []
    size = 0
    for piece in pieces:
        buffer.append(piece)
        size += len(piece)
        if size >= FLUSH_BYTES:
            yield "".join(buffer)
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer)


def _features(queryset: QuerySet[Any]) -> Iterator[str]:
    rows = (
        queryset.order_by("id")
        # jsonb -> text in PostgreSQL: the stored GeoJSON is copied through without a parse.
        .annotate(boundary_text=Cast("boundary", TextField()))
        .values_list("id", "farm_id", "name", "area_ha", "boundary_text")
        .iterator(chunk_size=CHUNK_ROWS)
    )
    yield '{"type":"FeatureCollection","features":['
    separator = ""
    for pk, farm_id, name, area_ha, boundary in rows:
        properties = json.dumps(
            {"id": str(pk), "farm": str(farm_id), "name": name, "area_ha": area_ha}
        )
        yield (
            f'{separator}{{"type":"Feature","id":"{pk}","geometry":{boundary},'
            f'"properties":{properties}}}'
        )
        separator = ","
    yield "]}\n"


def field_feature_collection(queryset: QuerySet[Any]) -> Iterator[str]:
    return _flushed(_features(queryset))


class _Line:
    """A write-only file for csv.writer that hands back what was written."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(_FORMULA_PREFIXES):
        return "'" + value
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _csv_rows(queryset: QuerySet[Any]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(OBSERVATION_CSV_COLUMNS)
    rows = (
        queryset.order_by("observed_at", "id")
        .values_list(
            "id",
            "field__farm_id",
            "field_id",
            "planting_id",
            "observed_at",
            "kind",
            "value",
            "unit",
            "text",
            "recorded_by_id",
            "device_id",
            "supersedes_id",
            "is_superseded",
        )
        .iterator(chunk_size=CHUNK_ROWS)
    )
    for row in rows:
        yield writer.writerow([_cell(value) for value in row])


def observation_csv(queryset: QuerySet[Any]) -> Iterator[str]:
    return _flushed(_csv_rows(queryset))
