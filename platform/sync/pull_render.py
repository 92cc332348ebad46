"""A pull page as bytes, in Verdant's wire shape or WatermelonDB's ``pullChanges`` result."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from apikit.json import dumps
from sync.cursor import SCHEMA_VERSION


@dataclass
class TableChanges:
    # JSON array texts built by PostgreSQL, joined when rendered.
    payloads: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


@dataclass
class PageChanges:
    """Per wire table: the rows (JSON text) and tombstones of one page, and the ids sent (for
    the read audit)."""

    tables: dict[str, TableChanges] = field(default_factory=dict)
    sent: dict[str, set[uuid.UUID]] = field(default_factory=dict)

    def add(
        self,
        table: str,
        *,
        payload: str = "[]",
        deleted: list[str] | None = None,
        sent: set[uuid.UUID] | None = None,
    ) -> None:
        changes = self.tables.setdefault(table, TableChanges())
        if payload != "[]":
            changes.payloads.append(payload)
        if deleted:
            changes.deleted.extend(deleted)
        if sent:
            self.sent.setdefault(table, set()).update(sent)


def _rows(changes: TableChanges) -> orjson.Fragment:
    if not changes.payloads:
        return orjson.Fragment(b"[]")
    if len(changes.payloads) == 1:
        return orjson.Fragment(changes.payloads[0])
    inner = ",".join(payload[1:-1] for payload in changes.payloads)
    return orjson.Fragment(f"[{inner}]")


def render_page(
    *,
    changes: PageChanges,
    cursor: str,
    position: int,
    has_more: bool,
    strategy: str,
    wmdb: bool,
) -> bytes:
    """``position`` is the next cursor's place in the change log (a transaction id): it only
    grows for a device, on every web pod, so it is WatermelonDB's ``timestamp``."""
    body: dict[str, Any]
    if wmdb:
        # WatermelonDB's pullChanges result: everything as "updated" (the app sets
        # sendCreatedAsUpdated); the adapter keeps the opaque cursor in database.localStorage
        # (in onDidPullChanges) and calls synchronize() again while has_more.
        body = {
            "changes": {
                name: {"created": [], "updated": _rows(table), "deleted": table.deleted}
                for name, table in changes.tables.items()
            },
            "timestamp": max(1, position),
            "cursor": cursor,
            "has_more": has_more,
            "experimentalStrategy": strategy,
            "schema_version": SCHEMA_VERSION,
        }
    else:
        body = {
            "strategy": strategy,
            "changes": {
                name: {"upserted": _rows(table), "deleted": table.deleted}
                for name, table in changes.tables.items()
            },
            "cursor": cursor,
            "has_more": has_more,
            "server_time": datetime.fromtimestamp(time.time(), tz=UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "schema_version": SCHEMA_VERSION,
        }
    return dumps(body)
