"""The shapes a push moves through: parsed input rows, rows being decided, per-row results, and
the errors a row's rules raise."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from apikit.rules import RuleError

if TYPE_CHECKING:
    from sync.registry import SyncTable


class Status(StrEnum):
    APPLIED = "applied"
    MERGED = "merged"
    CONFLICT = "conflict"
    REJECTED = "rejected"
    DUPLICATE = "duplicate"
    GONE = "gone"


# Statuses that count as success for ``"atomic": "all"``.
SUCCESS = frozenset({Status.APPLIED, Status.MERGED, Status.DUPLICATE})


class Mode(StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"


@dataclass
class RowIn:
    """One row as the client sent it, after the structural checks of the body."""

    index: int
    op: str
    raw_id: Any
    id: uuid.UUID | None
    base_version: int | None
    fields: dict[str, Any]
    changed: frozenset[str] | None
    errors: list[dict[str, str]] = field(default_factory=list)
    # A WatermelonDB raw record: JSON columns arrive as JSON text, empty relations as "".
    wmdb: bool = False


@dataclass
class RowResult:
    table: str
    id: str
    status: Status
    version: int | None = None
    errors: list[dict[str, str]] | None = None
    server_record: dict[str, Any] | None = None
    conflicting_fields: list[str] | None = None
    reason: str | None = None
    merged_fields: list[str] | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"table": self.table, "id": self.id, "status": str(self.status)}
        if self.version is not None:
            out["version"] = self.version
        if self.reason is not None:
            out["reason"] = self.reason
        if self.errors is not None:
            out["errors"] = self.errors
        if self.conflicting_fields is not None:
            out["conflicting_fields"] = self.conflicting_fields
        if self.merged_fields is not None:
            out["merged_fields"] = self.merged_fields
        if self.server_record is not None:
            out["server_record"] = self.server_record
        return out


@dataclass
class Draft:
    """A row while its outcome is decided: the full column values to write and the mode."""

    row: RowIn
    table: str
    id: uuid.UUID
    existing: dict[str, Any] | None
    mode: Mode | None = None
    values: dict[str, Any] = field(default_factory=dict)
    # The version the write's compare-and-swap expects (None: unconditional delete).
    expected_version: int | None = None
    merged_fields: list[str] | None = None
    result: RowResult | None = None
    # How the row was written (set once its statement returned it).
    written: Mode | None = None

    def finish(self, status: Status, **kwargs: Any) -> None:
        self.mode = None
        self.result = RowResult(table=self.table, id=str(self.id), status=status, **kwargs)

    def reject(self, errors: list[dict[str, str]]) -> None:
        self.finish(Status.REJECTED, errors=errors)


def error(code: str, msg: str, field_name: str | None = None) -> dict[str, str]:
    out = {"code": code, "msg": msg}
    if field_name is not None:
        out["field"] = field_name
    return out


def server_record(table: SyncTable, row: dict[str, Any]) -> dict[str, Any]:
    """The server's copy of a row, as a conflict reports it."""
    record = {"id": str(row["id"]), "version": row["version"], "updated_at": row["updated_at"]}
    for name in table.comparable:
        record[name] = row.get(name)
    if row.get("archived_at") is not None:
        record["deleted"] = True
    return record


class RowInvalidError(Exception):
    """Several broken rules of one row, reported together."""

    def __init__(self, errors: list[RuleError]) -> None:
        super().__init__(errors)
        self.errors = errors


class RowErrors:
    """Collects a row's broken rules so the client hears of all of them at once::

    errors = RowErrors()
    with errors.collect():
        rules.mrn_check(mrn=values["mrn"])
    with errors.collect():
        values["phone"] = rules.phone_normalise(phone=values["phone"])
    errors.raise_any()
    """

    def __init__(self) -> None:
        self.errors: list[RuleError] = []

    @contextmanager
    def collect(self) -> Iterator[None]:
        """Run a block of checks; a rule it breaks is kept and the block is left."""
        try:
            yield
        except RuleError as exc:
            self.errors.append(exc)

    def raise_any(self) -> None:
        if self.errors:
            raise RowInvalidError(self.errors)
