"""Writing one resource type of an export as an NDJSON file in the tenant's file space.

Rows stream from a server-side cursor into a local temporary file, one ``orjson`` line each, and
the finished file is handed to Django's storage (the project's file store, so the same code works
on a local disk or an object store). Memory holds one cursor chunk at a time, never the file.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.files import File
from django.core.files.storage import default_storage

from apikit.json import dumps
from apikit.tenancy import current_schema_name
from clinical.bulkdata.resources import Source

# Rows per cursor fetch, audit event and cancellation check.
CHUNK = 2000
_BUFFER = 1 << 20


@dataclass(frozen=True)
class Written:
    resource_type: str
    path: str
    count: int


class ExportCancelledError(Exception):
    """The export was deleted while it ran."""


def export_file_name(*, export_id: Any, resource_type: str) -> str:
    """Where a type's file of an export is stored: under the tenant's prefix, like uploads."""
    return f"{current_schema_name()}/fhir-bulk/{export_id}/{resource_type}.ndjson"


def source_write(
    *,
    source: Source,
    export_id: Any,
    on_chunk: Callable[[Source, list[Any], int], None],
) -> Written | None:
    """Write ``source`` to its file; ``on_chunk(source, rows, written_so_far)`` runs after every
    chunk (audit, progress, cancellation). None when the type has no rows (no empty files: the
    manifest lists only files with resources)."""
    count = 0
    with tempfile.TemporaryFile(buffering=_BUFFER) as spool:
        chunk: list[Any] = []
        for row in source.rows():
            spool.write(dumps(source.build(row)))
            spool.write(b"\n")
            chunk.append(row)
            if len(chunk) == CHUNK:
                count += len(chunk)
                on_chunk(source, chunk, count)
                chunk = []
        if chunk:
            count += len(chunk)
            on_chunk(source, chunk, count)
        if count == 0:
            return None
        spool.seek(0)
        name = export_file_name(export_id=export_id, resource_type=source.resource_type)
        if default_storage.exists(name):
            default_storage.delete(name)
        stored = default_storage.save(name, File(spool, name=name))
    return Written(resource_type=source.resource_type, path=stored, count=count)
