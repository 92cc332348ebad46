"""The push body: decompression within the byte limit, JSON, the two wire formats (Verdant's and
WatermelonDB's), the row limit, and the structural checks of every row (op, id, base_version).

Malformed bodies are 400; too large ones 413 with the limits; a bad row is only that row's
``rejected``."""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from apikit.errors import APIError
from sync.columns import canonical_uuid
from sync.push.rows import RowIn, error

MAX_ROWS = 5_000
MAX_BYTES = 10 * 1024 * 1024
LIMITS = {"max_rows": MAX_ROWS, "max_bytes": MAX_BYTES}

TOO_MANY_ROWS = "The push holds {rows} rows; at most {max_rows} rows per push."
TOO_MANY_BYTES = "The push body is larger than {max_bytes} bytes (decompressed)."
NOT_JSON = "The body is not valid JSON."
BAD_ENCODING = "Unsupported Content-Encoding {value!r}; send identity or gzip."
BAD_GZIP = "The gzip body could not be decompressed."
BAD_SHAPE = "The body must be an object with a 'changes' object of tables."
BAD_TABLE = "changes.{table} must be {what}."
BAD_ATOMIC = '\'atomic\' must be "row" or "all".'
BAD_OP = 'op must be "upsert" or "delete".'
BAD_ID = "id must be a UUID in canonical lower-case form (8-4-4-4-12 hex digits)."
BAD_BASE = "base_version must be a positive integer or null."
BAD_FIELDS = "fields must be an object."
BAD_CHANGED = "changed must be a list of field names."
BAD_ROW = "Each change must be an object."
BAD_SINCE = "'{key}' must be the cursor of your last pull (a string), or absent."

# WatermelonDB's bookkeeping columns on raw records; never data.
_WMDB_META = frozenset({"_status", "_changed"})


class PushTooLargeError(APIError):
    def __init__(self, detail: str) -> None:
        super().__init__(status=413, code="payload_too_large", detail=detail)


def _bad(detail: str) -> APIError:
    return APIError(status=400, code="malformed_push", detail=detail)


@dataclass
class PushBatch:
    atomic: str
    # Table name -> rows, in the order the request listed them.
    tables: dict[str, list[RowIn]]
    wmdb: bool
    # The client's last pull cursor ("cursor"; WatermelonDB: "lastPulledAt"), if it sent one.
    since: str | None = None

    @property
    def row_count(self) -> int:
        return sum(len(rows) for rows in self.tables.values())


def body_decode(raw: bytes, *, content_encoding: str) -> bytes:
    """The request body, decompressed if gzip, never more than MAX_BYTES."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(raw) > MAX_BYTES:
            raise PushTooLargeError(TOO_MANY_BYTES.format(**LIMITS))
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise APIError(
            status=415, code="unsupported_media_type", detail=BAD_ENCODING.format(value=encoding)
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, MAX_BYTES + 1)
    except zlib.error:
        raise _bad(BAD_GZIP) from None
    if len(out) > MAX_BYTES or inflater.unconsumed_tail:
        raise PushTooLargeError(TOO_MANY_BYTES.format(**LIMITS))
    return out


def batch_parse(body: bytes, *, wmdb: bool) -> PushBatch:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise _bad(NOT_JSON) from None
    if not isinstance(data, dict) or not isinstance(data.get("changes"), dict):
        raise _bad(BAD_SHAPE)
    atomic = data.get("atomic", "row")
    if atomic not in ("row", "all"):
        raise _bad(BAD_ATOMIC)
    changes: dict[str, Any] = data["changes"]
    _check_count(changes, wmdb=wmdb)
    tables: dict[str, list[RowIn]] = {}
    for table, payload in changes.items():
        tables[str(table)] = _wmdb_rows(table, payload) if wmdb else _native_rows(table, payload)
    return PushBatch(atomic=atomic, tables=tables, wmdb=wmdb, since=_since(data, wmdb=wmdb))


def _since(data: dict[str, Any], *, wmdb: bool) -> str | None:
    if wmdb and data.get("cursor") is None:
        # WatermelonDB's own lastPulledAt is a number; only a cursor string that an adapter
        # passes there (or as "cursor", as docs/sync.md shows) is ours.
        value = data.get("lastPulledAt")
        return value if isinstance(value, str) and value else None
    value = data.get("cursor")
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(BAD_SINCE.format(key="cursor"))
    return value


def _check_count(changes: dict[str, Any], *, wmdb: bool) -> None:
    """413 before any row is looked at: the count is cheap and bounds everything after it."""
    rows = 0
    for table, payload in changes.items():
        if wmdb:
            if not isinstance(payload, dict):
                raise _bad(
                    BAD_TABLE.format(table=table, what="an object of created/updated/deleted")
                )
            for key in ("created", "updated", "deleted"):
                part = payload.get(key, [])
                if not isinstance(part, list):
                    raise _bad(BAD_TABLE.format(table=f"{table}.{key}", what="a list"))
                rows += len(part)
        else:
            if not isinstance(payload, list):
                raise _bad(BAD_TABLE.format(table=table, what="a list of changes"))
            rows += len(payload)
    if rows > MAX_ROWS:
        raise PushTooLargeError(TOO_MANY_ROWS.format(rows=rows, **LIMITS))


def _uuid(value: Any) -> uuid.UUID | None:
    """Only the canonical form: devices compare ids as exact strings, so an id accepted in
    another spelling would come back canonical and duplicate the local row."""
    return canonical_uuid(value)


def _base(value: Any) -> tuple[int | None, bool]:
    if value is None:
        return None, True
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value < 2**31:
        return value, True
    return None, False


def _changed(value: Any) -> tuple[frozenset[str] | None, bool]:
    if value is None:
        return None, True
    if isinstance(value, str):  # WatermelonDB: "name,notes"
        return frozenset(part for part in value.split(",") if part), True
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value), True
    return None, False


def _native_rows(table: str, payload: list[Any]) -> list[RowIn]:
    rows = []
    for index, item in enumerate(payload):
        if not isinstance(item, dict):
            rows.append(
                RowIn(index, "upsert", None, None, None, {}, None, [error("invalid", BAD_ROW)])
            )
            continue
        errors = []
        op = item.get("op", "upsert")
        if op not in ("upsert", "delete"):
            errors.append(error("invalid", BAD_OP, "op"))
        raw_id = item.get("id")
        row_id = _uuid(raw_id)
        if row_id is None:
            errors.append(error("invalid", BAD_ID, "id"))
        base, base_ok = _base(item.get("base_version"))
        if not base_ok:
            errors.append(error("invalid", BAD_BASE, "base_version"))
        fields = item.get("fields", {})
        if not isinstance(fields, dict):
            errors.append(error("invalid", BAD_FIELDS, "fields"))
            fields = {}
        changed, changed_ok = _changed(item.get("changed"))
        if not changed_ok:
            errors.append(error("invalid", BAD_CHANGED, "changed"))
        rows.append(RowIn(index, str(op), raw_id, row_id, base, fields, changed, errors))
    return rows


def _wmdb_rows(table: str, payload: dict[str, Any]) -> list[RowIn]:
    """WatermelonDB's ``{created: [raw], updated: [raw], deleted: [id]}``: a raw record carries
    its columns flat, plus ``_status`` / ``_changed``; ``version`` (as pulled) is the base."""
    rows: list[RowIn] = []
    for kind in ("created", "updated"):
        for record in payload.get(kind, []):
            index = len(rows)
            if not isinstance(record, dict):
                rows.append(
                    RowIn(index, "upsert", None, None, None, {}, None, [error("invalid", BAD_ROW)])
                )
                continue
            errors = []
            raw_id = record.get("id")
            row_id = _uuid(raw_id)
            if row_id is None:
                errors.append(error("invalid", BAD_ID, "id"))
            # A record created on the device holds version 0 (a number column's empty value)
            # until a pull brings the server's copy back: no base, like a create.
            version = record.get("version")
            base, base_ok = (None, True) if kind == "created" or version == 0 else _base(version)
            if not base_ok:
                errors.append(error("invalid", BAD_BASE, "version"))
            changed, changed_ok = _changed(record.get("_changed"))
            if not changed_ok:
                changed = None
            fields = {
                key: value
                for key, value in record.items()
                if key not in _WMDB_META and key not in ("id", "version")
            }
            rows.append(
                RowIn(index, "upsert", raw_id, row_id, base, fields, changed, errors, wmdb=True)
            )
    for raw_id in payload.get("deleted", []):
        row_id = _uuid(raw_id)
        errors = [] if row_id is not None else [error("invalid", BAD_ID, "id")]
        rows.append(RowIn(len(rows), "delete", raw_id, row_id, None, {}, None, errors))
    return rows
