"""The client-writable columns of a synced table (``SyncTable.columns``, declared by each domain's
``sync.py``), and the fast per-value checks a push runs on them (plain Python on dicts: no
serializer, no query). Each parser returns the value to write or raises ``FieldError``."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from apikit.rules import RuleError

REQUIRED = "This field is required."
NOT_NULL = "This field may not be null."
NOT_TEXT = "Must be a string."
TOO_LONG = "At most {max_length} characters."
NOT_CHOICE = "{value!r} is not one of: {choices}."
NOT_UUID = "Must be a UUID in canonical lower-case form (8-4-4-4-12 hex digits)."
NOT_DATE = "Must be a date (YYYY-MM-DD)."
NOT_DATETIME = "Must be an ISO 8601 date-time with a time zone offset, or epoch milliseconds."
NOT_NUMBER = "Must be a finite number."
NOT_BOOL = "Must be true or false."
NOT_OBJECT = "Must be a JSON object."
NOT_JSON_TEXT = "Must be a JSON object, or JSON text of one (WatermelonDB's @json)."
OUT_OF_RANGE = "Must be between {low} and {high}."


class FieldError(RuleError):
    """One rejected value of a pushed row; ``field`` is the wire column."""

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "msg": self.message}


Parser = Callable[[Any, "Column"], Any]


def _text(value: Any, column: Column) -> Any:
    if not isinstance(value, str):
        raise FieldError(column.name, NOT_TEXT)
    if column.max_length is not None and len(value) > column.max_length:
        raise FieldError(column.name, TOO_LONG.format(max_length=column.max_length), "max_length")
    if column.choices is not None and value not in column.choices:
        choices = ", ".join(sorted(column.choices))
        raise FieldError(column.name, NOT_CHOICE.format(value=value, choices=choices), "choice")
    return value


def canonical_uuid(value: Any) -> uuid.UUID | None:
    """The UUID of ``value`` if it is written in canonical lower-case form, else None."""
    if isinstance(value, str) and len(value) == 36:
        try:
            parsed = uuid.UUID(value)
        except ValueError:
            return None
        if str(parsed) == value:
            return parsed
    return None


def _uuid(value: Any, column: Column) -> Any:
    parsed = canonical_uuid(value)
    if parsed is None:
        raise FieldError(column.name, NOT_UUID)
    return parsed


def _date(value: Any, column: Column) -> Any:
    if isinstance(value, str) and len(value) == 10:
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise FieldError(column.name, NOT_DATE)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _datetime(value: Any, column: Column) -> Any:
    if isinstance(value, str) and 16 <= len(value) <= 40:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        # WatermelonDB apps store times as epoch milliseconds.
        try:
            return _EPOCH + dt.timedelta(milliseconds=value)
        except OverflowError:
            pass
    raise FieldError(column.name, NOT_DATETIME)


def _float(value: Any, column: Column) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FieldError(column.name, NOT_NUMBER)
    number = float(value)
    if (
        column.low is not None
        and column.high is not None
        and not (column.low <= number <= column.high)
    ):
        raise FieldError(column.name, OUT_OF_RANGE.format(low=column.low, high=column.high))
    return number


def _decimal(value: Any, column: Column) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FieldError(column.name, NOT_NUMBER)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise FieldError(column.name, NOT_NUMBER) from None
    if not number.is_finite():
        raise FieldError(column.name, NOT_NUMBER)
    if (
        column.low is not None
        and column.high is not None
        and not (Decimal(str(column.low)) <= number <= Decimal(str(column.high)))
    ):
        raise FieldError(column.name, OUT_OF_RANGE.format(low=column.low, high=column.high))
    return number


def _bool(value: Any, column: Column) -> Any:
    if not isinstance(value, bool):
        raise FieldError(column.name, NOT_BOOL)
    return value


def _json_object(value: Any, column: Column) -> Any:
    if not isinstance(value, dict):
        raise FieldError(column.name, NOT_OBJECT)
    return value


_PARSERS: dict[str, tuple[Parser, str]] = {
    # kind: (parser, PostgreSQL array element type for unnest)
    "text": (_text, "text"),
    "uuid": (_uuid, "uuid"),
    "date": (_date, "date"),
    "datetime": (_datetime, "timestamptz"),
    "float": (_float, "float8"),
    "decimal": (_decimal, "numeric"),
    "bool": (_bool, "boolean"),
    "json": (_json_object, "text"),  # sent as JSON text, cast to jsonb in SQL
}


@dataclass(frozen=True)
class Column:
    """One client-writable column. ``name`` is the wire name and the database column
    (``field_id`` for a foreign key); ``aliases`` are also accepted on input (``field``)."""

    name: str
    kind: str
    required: bool = False
    nullable: bool = False
    default: Any = None
    max_length: int | None = None
    choices: frozenset[str] | None = None
    low: float | None = None
    high: float | None = None
    # The synced table a foreign key points at (checked with one query per table).
    ref: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def sql_type(self) -> str:
        return _PARSERS[self.kind][1]

    @property
    def cast(self) -> str:
        return "::jsonb" if self.kind == "json" else ""

    def parse(self, value: Any, *, wmdb: bool = False) -> Any:
        if wmdb:
            value = self._from_watermelondb(value)
        if value is None:
            if self.nullable:
                return None
            raise FieldError(self.name, NOT_NULL, "null")
        return _PARSERS[self.kind][0](value, self)

    def _from_watermelondb(self, value: Any) -> Any:
        """A WatermelonDB column holds a string, number or boolean: JSON is stored as JSON text
        (``@json``) and a non-optional relation column with no value holds ``""``."""
        if self.kind == "uuid" and value == "":
            return None
        if self.kind == "json" and isinstance(value, str):
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError:
                raise FieldError(self.name, NOT_JSON_TEXT) from None
        return value

    def missing(self) -> Any:
        """The value of a column a create did not send: its default, or a ``required`` error."""
        if self.required:
            raise FieldError(self.name, REQUIRED, "required")
        return self.default


def choices_of(model_choices: Any) -> frozenset[str]:
    return frozenset(str(value) for value in model_choices.values)
