"""Synced rows as JSON, built by PostgreSQL with only the fields the user's role may receive.

One place renders a synced table's rows for every part of the pull (a page of the change log,
the resend of a scope change, the streamed first sync), in either wire format:

- native: the database values, timestamps as ISO 8601 UTC with ``Z`` (like the rest of the API);
- WatermelonDB (``wmdb``): a column holds only a string, number or boolean, and ``@date`` and
  the reserved ``created_at`` / ``updated_at`` columns read numbers, so every timestamp travels
  as epoch milliseconds and every JSON column (a field's boundary) as JSON text, what ``@json``
  stores and parses back.

Column names come from the registry and Django's own compiled SQL, never from input.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection, models
from django.db.models import QuerySet

from sync.registry import SyncTable


def _json_value(field: Any, column: str, *, wmdb: bool) -> str:
    if isinstance(field, models.DateTimeField):
        if wmdb:
            return f"(floor(extract(epoch FROM r.{column}) * 1000))::bigint"
        return f"to_char(r.{column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    if wmdb and isinstance(field, models.JSONField):
        return f"(r.{column})::text"
    return f"r.{column}"


def row_object_sql(
    *, table: SyncTable, fields: tuple[str, ...] | frozenset[str], wmdb: bool
) -> str:
    """``json_build_object(...)`` over the alias ``r`` for the wire ``fields`` of ``table``.

    WatermelonDB merges a pulled row into the local one (``{...local, ...remote}``), so a column
    the row lacks keeps its local value: under ``wmdb`` a field this user may not receive travels
    empty (``''`` for text, else null) — a device that held it (a role that lost the patients'
    phone numbers) clears it. The native format leaves such fields out."""
    meta = table.model._meta
    pairs = []
    for name, attname in table.fields.items():
        field = meta.get_field(attname)
        if name in fields:
            value = _json_value(field, connection.ops.quote_name(attname), wmdb=wmdb)
        elif wmdb:
            value = "''" if isinstance(field, models.CharField | models.TextField) else "NULL"
        else:
            continue
        pairs.append(f"'{name}', {value}")
    return f"json_build_object({', '.join(pairs)})"


def visible_rows(*, table: SyncTable, user: Any) -> QuerySet[Any]:
    """The live (not archived) rows of ``table`` the user may see."""
    return table.scope(user, table.model._base_manager.filter(archived_at__isnull=True))


def projected_values(*, table: SyncTable, user: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    projected = table.projection(user)
    return queryset.values(
        *[attname for name, attname in table.fields.items() if name in projected]
    )


def _rows_json(
    *,
    table: SyncTable,
    user: Any,
    queryset: QuerySet[Any],
    wmdb: bool,
    where: str,
    params: tuple[Any, ...],
) -> tuple[str, list[uuid.UUID]]:
    inner = projected_values(table=table, user=user, queryset=queryset)
    inner_sql, inner_params = inner.query.sql_with_params()
    row = row_object_sql(table=table, fields=table.projection(user), wmdb=wmdb)
    sql = (
        f"SELECT coalesce(json_agg({row} ORDER BY r.id)::text, '[]'), "  # noqa: S608
        "coalesce(array_agg(r.id ORDER BY r.id), '{}') "
        f"FROM ({inner_sql}) r {where}"
    )
    with connection.cursor() as db:
        db.execute(sql, (*inner_params, *params))
        payload, ids = db.fetchone()
    return payload, list(ids)


def rows_json_by_ids(
    *, table: SyncTable, user: Any, ids: list[uuid.UUID], wmdb: bool
) -> tuple[str, set[uuid.UUID]]:
    """The visible rows among ``ids`` as a JSON array (text) and the ids found."""
    payload, found = _rows_json(
        table=table,
        user=user,
        queryset=visible_rows(table=table, user=user),
        wmdb=wmdb,
        where="WHERE r.id = ANY(%s::uuid[])",
        params=(ids,),
    )
    return payload, set(found)


def rows_json_page(
    *, table: SyncTable, user: Any, queryset: QuerySet[Any], wmdb: bool
) -> tuple[str, list[uuid.UUID]]:
    """The rows of ``queryset`` (already narrowed, ordered by id and sliced) as a JSON array
    (text) and their ids in order."""
    return _rows_json(table=table, user=user, queryset=queryset, wmdb=wmdb, where="", params=())


def rows_text_sql(*, table: SyncTable, user: Any, wmdb: bool) -> tuple[str, tuple[Any, ...]]:
    """SQL returning ``(id, json text)`` per visible row, one row each (the streamed first
    sync reads it through a server-side cursor)."""
    inner = projected_values(table=table, user=user, queryset=visible_rows(table=table, user=user))
    inner_sql, inner_params = inner.query.sql_with_params()
    row = row_object_sql(table=table, fields=table.projection(user), wmdb=wmdb)
    return f"SELECT r.id, ({row})::text FROM ({inner_sql}) r", tuple(inner_params)  # noqa: S608
