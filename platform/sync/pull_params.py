"""Query parameters of a pull that need more than an int: the schema version (whose meaning
depends on the wire format) and WatermelonDB's ``migration`` argument."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from apikit.errors import APIError

SCHEMA_VERSION_INVALID = "schema_version must be a positive integer."
MIGRATION_INVALID = (
    "migration must be WatermelonDB's migration argument as JSON: "
    '{"from": <int>, "tables": [<table>...], "columns": [{"table": <table>, "columns": [...]}]}.'
)
MAX_MIGRATION_LENGTH = 8192


def pull_schema_version(params: Mapping[str, Any], *, wmdb: bool) -> int | None:
    """The sync schema version the pull is answered in (None: the current one).

    Native clients send the server's sync schema version. WatermelonDB's ``schemaVersion`` is
    the app's own local database version, which grows with every local migration whatever the
    server does, so under ``format=wmdb`` any positive integer is accepted and answered in the
    current sync schema (an app pins another with ``sync_schema``)."""
    raw = params.get("sync_schema") if wmdb else params.get("schema_version")
    if wmdb:
        app_version = params.get("schema_version")
        if app_version and not _positive_int(app_version):
            raise APIError(status=400, code="invalid_schema_version", detail=SCHEMA_VERSION_INVALID)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        return -1  # refused with the supported range


def _positive_int(value: str) -> bool:
    return value.isdigit() and int(value) >= 1


def migration_tables(raw: str | None) -> frozenset[str]:
    """The tables WatermelonDB's ``migration`` names (created, or given new columns)."""
    if not raw:
        return frozenset()
    if len(raw) > MAX_MIGRATION_LENGTH:
        raise _invalid()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise _invalid() from None
    if not isinstance(data, dict):
        raise _invalid()
    tables = data.get("tables", [])
    columns = data.get("columns", [])
    if not isinstance(tables, list) or not all(isinstance(name, str) for name in tables):
        raise _invalid()
    if not isinstance(columns, list):
        raise _invalid()
    names = set(tables)
    for entry in columns:
        if not isinstance(entry, dict) or not isinstance(entry.get("table"), str):
            raise _invalid()
        names.add(entry["table"])
    return frozenset(names)


def _invalid() -> APIError:
    return APIError(status=400, code="invalid_migration", detail=MIGRATION_INVALID)
