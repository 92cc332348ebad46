"""What a push knows while it decides rows: the caller, the caller's containers, and the rows
referenced by foreign keys (loaded with one query per referenced table, plus rows written
earlier in the same batch). A domain's ``clean`` hook reads references through ``check_ref``."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from apikit.policy import AccessLevel, sees_everything, visible_containers
from sync.columns import FieldError

# A reference to a row of this batch that was not written (rejected, conflict, ...).
FAILED: dict[str, Any] = {"__failed__": True}

DEPENDENCY_MISSING = "No such {table} row (or not visible to you)."
DEPENDENCY_FAILED = "The referenced {table} row in this batch was not written."
DEPENDENCY_ARCHIVED = "The referenced {table} row was deleted."


@dataclass
class PushContext:
    user: Any
    device_id: uuid.UUID | None
    now: dt.datetime
    # {table: {id: info}}: rows loaded by reference loaders, and rows of this batch.
    refs: dict[str, dict[Any, dict[str, Any]]] = field(default_factory=dict)
    # Containers the user holds each level on, per container model label; None = all.
    _scopes: dict[tuple[str, AccessLevel], frozenset[uuid.UUID] | None] = field(
        default_factory=dict
    )
    queries: int = 0

    @property
    def everything(self) -> bool:
        return sees_everything(self.user)

    def ref(self, table: str, ref_id: Any) -> dict[str, Any] | None:
        return self.refs.get(table, {}).get(ref_id)

    def remember(self, table: str, ref_id: Any, info: dict[str, Any]) -> None:
        self.refs.setdefault(table, {})[ref_id] = info

    def check_ref(
        self, table: str, *, column: str, value: Any, label: str | None = None
    ) -> dict[str, Any]:
        """The referenced row's info, or a ``FieldError`` on ``column`` naming why it cannot be
        used (unknown or invisible, not written in this batch, deleted)."""
        info = self.ref(table, value)
        name = label or table
        if info is None:
            raise FieldError(column, DEPENDENCY_MISSING.format(table=name), "dependency_missing")
        if info is FAILED:
            raise FieldError(column, DEPENDENCY_FAILED.format(table=name), "dependency_failed")
        if info.get("archived_at") is not None:
            raise FieldError(column, DEPENDENCY_ARCHIVED.format(table=name), "dependency_missing")
        return info

    def allowed(self, container_model: Any, level: AccessLevel, container_id: Any) -> bool:
        """Whether the user holds ``level`` on the container (one guardian query per model and
        level per push, then set lookups)."""
        if self.everything:
            return True
        key = (container_model._meta.label_lower, level)
        if key not in self._scopes:
            ids = visible_containers(
                user=self.user, container_model=container_model, level=level
            ).values_list("pk", flat=True)
            self._scopes[key] = frozenset(ids)
        scope = self._scopes[key]
        return scope is None or container_id in scope

    def fetch(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            names = [column.name for column in cursor.description or ()]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
