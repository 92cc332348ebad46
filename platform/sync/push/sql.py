"""Set-based SQL for pushed rows: one statement per table and kind (insert / update / delete),
each an ``unnest`` of typed arrays, with the version compare-and-swap in the statement itself.

Unqualified table names from ``Model._meta.db_table``, so the tenant's ``search_path`` applies;
every array parameter is cast, so empty lists and NULLs type correctly. The change-log
triggers fire for these statements like for any other write.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import orjson
from django.db import connection

from sync.registry import SyncTable


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def write_columns(spec: SyncTable) -> list[tuple[str, str, str]]:
    """(column, array element type, cast on read) of every column a pushed row writes."""
    columns = [(column.name, column.sql_type, column.cast) for column in spec.columns]
    columns += [(derived.name, derived.sql_type, "") for derived in spec.derived]
    return columns


def _array(values: list[Any], cast: str) -> list[Any]:
    if cast == "::jsonb":
        return [None if value is None else orjson.dumps(value).decode() for value in values]
    return values


def _execute(sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def insert_rows(
    spec: SyncTable, ids: list[uuid.UUID], rows: list[dict[str, Any]], *, user_id: Any
) -> dict[uuid.UUID, int]:
    """INSERT ... SELECT FROM unnest ... ON CONFLICT (id) DO NOTHING: ids missing from the
    answer were created by someone else since the rows were loaded."""
    if not ids:
        return {}
    columns = write_columns(spec)
    stamps = ["created_by_id", "updated_by_id"] + (["recorded_by_id"] if spec.recorded_by else [])
    names = ", ".join(_q(name) for name, _, _ in columns)
    selected = ", ".join(f"u.{_q(name)}{cast}" for name, _, cast in columns)
    arrays = ", ".join(["%s::uuid[]"] + [f"%s::{sql_type}[]" for _, sql_type, _ in columns])
    aliases = ", ".join(["id"] + [_q(name) for name, _, _ in columns])
    sql = (
        f"INSERT INTO {_q(spec.db_table)} AS t (id, {names}, version, created_at, updated_at, "  # noqa: S608
        f"{', '.join(stamps)}) "
        f"SELECT u.id, {selected}, 1, now(), now(), {', '.join(['%s::uuid'] * len(stamps))} "
        f"FROM unnest({arrays}) AS u({aliases}) "
        "ON CONFLICT (id) DO NOTHING RETURNING t.id, t.version"
    )
    # Placeholders in text order: the stamps (SELECT list) come before the arrays (FROM).
    params: list[Any] = [user_id] * len(stamps) + [ids]
    params += [_array([row[name] for row in rows], cast) for name, _, cast in columns]
    return dict(_execute(sql, params))


def update_rows(
    spec: SyncTable,
    ids: list[uuid.UUID],
    expected: list[int],
    rows: list[dict[str, Any]],
    *,
    user_id: Any,
) -> dict[uuid.UUID, int]:
    """UPDATE ... FROM unnest ... WHERE version = expected: the compare-and-swap for every row
    at once; ids missing from the answer lost a race since they were loaded."""
    if not ids:
        return {}
    columns = write_columns(spec)
    sets = ", ".join(f"{_q(name)} = u.{_q(name)}{cast}" for name, _, cast in columns)
    arrays = ", ".join(
        ["%s::uuid[]", "%s::int[]"] + [f"%s::{sql_type}[]" for _, sql_type, _ in columns]
    )
    aliases = ", ".join(["id", "base"] + [_q(name) for name, _, _ in columns])
    sql = (
        f"UPDATE {_q(spec.db_table)} AS t SET {sets}, version = t.version + 1, updated_at = now(), "  # noqa: S608
        f"updated_by_id = %s::uuid FROM unnest({arrays}) AS u({aliases}) "
        "WHERE t.id = u.id AND t.version = u.base AND t.archived_at IS NULL "
        "RETURNING t.id, t.version"
    )
    params: list[Any] = [user_id, ids, expected]
    params += [_array([row[name] for row in rows], cast) for name, _, cast in columns]
    return dict(_execute(sql, params))


def delete_rows(
    spec: SyncTable, ids: list[uuid.UUID], expected: list[int], *, user_id: Any
) -> dict[uuid.UUID, int]:
    """Soft delete (``archived_at``) with the same compare-and-swap."""
    if not ids:
        return {}
    sql = (
        f"UPDATE {_q(spec.db_table)} AS t SET archived_at = now(), version = t.version + 1, "  # noqa: S608
        "updated_at = now(), updated_by_id = %s::uuid "
        "FROM unnest(%s::uuid[], %s::int[]) AS u(id, base) "
        "WHERE t.id = u.id AND t.version = u.base AND t.archived_at IS NULL "
        "RETURNING t.id, t.version"
    )
    return dict(_execute(sql, [user_id, ids, expected]))


def existing_rows(spec: SyncTable, ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, Any]]:
    """The current state of the pushed ids (one query), archived rows included."""
    if not ids:
        return {}
    columns = [name for name, _, _ in write_columns(spec)]
    select = ", ".join(
        ["id", "version", "archived_at", "created_at", "updated_at", "created_by_id"]
        + [_q(name) for name in columns]
    )
    sql = f"SELECT {select} FROM {_q(spec.db_table)} WHERE id = ANY(%s::uuid[])"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids])
        names = [column.name for column in cursor.description or ()]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def referenced_rows(table: str, select: str, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    if not ids:
        return []
    sql = f"SELECT {select} FROM {_q(table)} AS t WHERE t.id = ANY(%s::uuid[])"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [ids])
        names = [column.name for column in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def fields_changed_since(
    table: str, ids: list[uuid.UUID], bases: list[int]
) -> dict[uuid.UUID, tuple[set[str], int]]:
    """Per row: the columns changed after version ``base`` and how many versions the history
    holds for that span (one query over ``sync_field_change``)."""
    if not ids:
        return {}
    sql = (
        "SELECT u.id, array_remove(array_agg(DISTINCT f.name), NULL), count(DISTINCT h.version) "
        "FROM unnest(%s::uuid[], %s::int[]) AS u(id, base) "
        "JOIN sync_field_change h ON h.tbl = %s AND h.row_id = u.id AND h.version > u.base "
        "LEFT JOIN LATERAL unnest(h.fields) AS f(name) ON true "
        "GROUP BY u.id"
    )
    return {
        row_id: (set(names), int(count))
        for row_id, names, count in _execute(sql, [ids, bases, table])
    }
