"""FHIR search parameters: parsing and applying them to a scoped queryset (docs/fhir.md).

A resource type declares its parameters as ``SearchParam``s (name, FHIR type, the filter); this
module reads the query string against them:

- several values in one parameter (``a,b``) are OR, a repeated parameter is AND;
- ``string``: starts-with, case-insensitive; ``:exact`` and ``:contains`` modifiers;
- ``token``: ``[system|]code``; ``reference``: ``Type/id``, a bare ``id`` or an absolute URL;
- ``date``: the prefixes eq (default), ne, gt, lt, ge, le, over the value's own precision
  (``2026`` is the whole year); a date without a time is read in UTC; a time needs its zone;
- another modifier is a 400 (FHIR: a server rejects modifiers it does not know), a malformed
  value is a 400;
- an unknown parameter is ignored (and left out of the ``self`` link), or a 400 when the request
  says ``Prefer: handling=strict``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Q, QuerySet
from rest_framework.exceptions import ValidationError

# Result parameters (FHIR search.html#Summary) read by the paging, not by filters.
COUNT_PARAM = "_count"
CURSOR_PARAM = "_cursor"
RESULT_PARAMS = frozenset({COUNT_PARAM, CURSOR_PARAM, "_format"})
PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le")
STRING_MODIFIERS = frozenset({"exact", "contains"})

UNKNOWN_PARAMETER = "Unknown search parameter {name!r} (Prefer: handling=strict)."
UNKNOWN_MODIFIER = "Search parameter {name!r} does not support the modifier {modifier!r}."
BAD_DATE = (
    "{name}: {value!r} is not a FHIR date search value (prefix eq, ne, gt, lt, ge or le, then "
    "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss[.fff]] with Z or ±hh:mm)."
)
DATE_ONLY = "{name}: {value!r} — this parameter takes a date (YYYY, YYYY-MM or YYYY-MM-DD)."
EMPTY_VALUE = "{name}: a search parameter needs a value."

_DATE = re.compile(
    r"^(?P<prefix>eq|ne|gt|lt|ge|le)?(?P<year>\d{4})(-(?P<month>\d{2})(-(?P<day>\d{2})"
    r"(T(?P<hour>\d{2}):(?P<minute>\d{2})(:(?P<second>\d{2})(?P<fraction>\.\d{1,6})?)?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def invalid(message: str) -> ValidationError:
    return ValidationError({"non_field_errors": [message]})


@dataclass(frozen=True)
class Token:
    system: str | None  # None: any system; "": no system
    code: str


@dataclass(frozen=True)
class DateRange:
    """A search value as the half-open interval [low, high) it names, and its prefix."""

    prefix: str
    low: dt.datetime
    high: dt.datetime
    has_time: bool


Filter = Callable[[QuerySet[Any], list[str], str | None], QuerySet[Any]]


@dataclass(frozen=True)
class SearchParam:
    """A search parameter of a resource type: its FHIR ``type`` (CapabilityStatement), the
    filter applying one occurrence's comma-separated values, and the modifiers it takes."""

    name: str
    type: str
    apply: Filter
    documentation: str
    modifiers: frozenset[str] = field(default_factory=frozenset)


def strict_handling(prefer: str) -> bool:
    """``Prefer: handling=strict`` (RFC 7240 preferences, comma- or semicolon-separated)."""
    tokens = re.split(r"[,;]", prefer or "")
    return any(token.strip().lower().replace(" ", "") == "handling=strict" for token in tokens)


def split_values(raw: str) -> list[str]:
    """``a,b`` -> ``[a, b]``; ``\\,`` is a literal comma (FHIR escaping)."""
    parts = re.split(r"(?<!\\),", raw)
    return [part.replace("\\,", ",").strip() for part in parts if part.strip()]


def token(value: str) -> Token:
    if "|" in value:
        system, _, code = value.partition("|")
        return Token(system=system, code=code)
    return Token(system=None, code=value)


def uuids(values: Iterable[str]) -> list[uuid.UUID]:
    """The values that are UUIDs (others name nothing here: never an error, just no match)."""
    found = []
    for value in values:
        try:
            found.append(uuid.UUID(value))
        except ValueError:
            continue
    return found


def reference_ids(values: Iterable[str], *, resource_type: str) -> list[str]:
    """The ids ``values`` name as references to ``resource_type``: ``Type/id``, an absolute
    ``…/Type/id`` or a bare ``id``. A reference to another type names nothing."""
    ids = []
    for value in values:
        parts = value.rstrip("/").split("/")
        if len(parts) == 1:
            ids.append(parts[0])
        elif parts[-2] == resource_type:
            ids.append(parts[-1])
    return ids


def date_range(name: str, value: str) -> DateRange:
    match = _DATE.match(value)
    if match is None:
        raise invalid(BAD_DATE.format(name=name, value=value))
    parts = match.groupdict()
    has_time = parts["hour"] is not None
    if has_time and parts["zone"] is None:
        raise invalid(BAD_DATE.format(name=name, value=value))
    try:
        year = int(parts["year"])
        if parts["month"] is None:
            low = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
            high = dt.datetime(year + 1, 1, 1, tzinfo=dt.UTC)
        elif parts["day"] is None:
            month = int(parts["month"])
            low = dt.datetime(year, month, 1, tzinfo=dt.UTC)
            high = (low + dt.timedelta(days=32)).replace(day=1)
        elif not has_time:
            low = dt.datetime(year, int(parts["month"]), int(parts["day"]), tzinfo=dt.UTC)
            high = low + dt.timedelta(days=1)
        else:
            zone = dt.UTC if parts["zone"] == "Z" else _offset(parts["zone"])
            fraction = parts["fraction"] or ""
            low = dt.datetime(
                year,
                int(parts["month"]),
                int(parts["day"]),
                int(parts["hour"]),
                int(parts["minute"]),
                int(parts["second"] or 0),
                int((fraction[1:] + "000000")[:6]) if fraction else 0,
                tzinfo=zone,
            )
            if fraction:
                step = dt.timedelta(microseconds=10 ** (6 - (len(fraction) - 1)))
            elif parts["second"] is not None:
                step = dt.timedelta(seconds=1)
            else:
                step = dt.timedelta(minutes=1)
            high = low + step
    except (ValueError, OverflowError):
        raise invalid(BAD_DATE.format(name=name, value=value)) from None
    return DateRange(prefix=parts["prefix"] or "eq", low=low, high=high, has_time=has_time)


def _offset(text: str) -> dt.tzinfo:
    sign = 1 if text[0] == "+" else -1
    hours, minutes = int(text[1:3]), int(text[4:6])
    return dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))


def date_q(column: str, value: DateRange, *, date_only: bool = False) -> Q:
    """The condition ``column`` (a point in time, or a date) meets for ``value``'s prefix."""
    low: Any = value.low.date() if date_only else value.low
    high: Any = value.high.date() if date_only else value.high
    within = Q(**{f"{column}__gte": low, f"{column}__lt": high})
    conditions = {
        "eq": within,
        "ne": ~within,
        "gt": Q(**{f"{column}__gte": high}),
        "ge": Q(**{f"{column}__gte": low}),
        "lt": Q(**{f"{column}__lt": low}),
        "le": Q(**{f"{column}__lt": high}),
    }
    return conditions[value.prefix]


def date_filter(column: str, *, name: str, date_only: bool = False) -> Filter:
    """``name``: the parameter, for error messages."""

    def apply(queryset: QuerySet[Any], values: list[str], modifier: str | None) -> QuerySet[Any]:
        condition = Q(pk__in=[])
        for value in values:
            parsed = date_range(name, value)
            if date_only and parsed.has_time:
                raise invalid(DATE_ONLY.format(name=name, value=value))
            condition |= date_q(column, parsed, date_only=date_only)
        return queryset.filter(condition)

    return apply


def string_filter(*columns: str, word_start: bool = False) -> Filter:
    """Starts-with (of the value, or of any word of it with ``word_start``), ``:exact``,
    ``:contains``; over any of ``columns``."""

    def apply(queryset: QuerySet[Any], values: list[str], modifier: str | None) -> QuerySet[Any]:
        condition = Q(pk__in=[])
        for value in values:
            for column in columns:
                if modifier == "exact":
                    condition |= Q(**{column: value})
                elif modifier == "contains":
                    condition |= Q(**{f"{column}__icontains": value})
                elif word_start:
                    condition |= Q(**{f"{column}__iregex": r"(^|\s)" + re.escape(value)})
                else:
                    condition |= Q(**{f"{column}__istartswith": value})
        return queryset.filter(condition)

    return apply


def id_filter(column: str = "pk") -> Filter:
    def apply(queryset: QuerySet[Any], values: list[str], modifier: str | None) -> QuerySet[Any]:
        return queryset.filter(**{f"{column}__in": uuids(values)})

    return apply


def reference_filter(column: str, resource_type: str) -> Filter:
    def apply(queryset: QuerySet[Any], values: list[str], modifier: str | None) -> QuerySet[Any]:
        ids = uuids(reference_ids(values, resource_type=resource_type))
        return queryset.filter(**{f"{column}__in": ids})

    return apply


def token_filter(match: Callable[[Token], Q | None]) -> Filter:
    """``match`` turns one token into a condition (None: it matches nothing)."""

    def apply(queryset: QuerySet[Any], values: list[str], modifier: str | None) -> QuerySet[Any]:
        condition = Q(pk__in=[])
        for value in values:
            found = match(token(value))
            if found is not None:
                condition |= found
        return queryset.filter(condition)

    return apply


@dataclass(frozen=True)
class AppliedSearch:
    queryset: QuerySet[Any]
    # The parameters applied, as (name[:modifier], raw value) pairs, for the ``self`` link.
    applied: list[tuple[str, str]]


def search_apply(
    queryset: QuerySet[Any],
    *,
    params: Mapping[str, Sequence[str]],
    spec: Mapping[str, SearchParam],
    strict: bool,
) -> AppliedSearch:
    applied: list[tuple[str, str]] = []
    for key in sorted(params):
        if key in RESULT_PARAMS:
            continue
        name, _, modifier = key.partition(":")
        param = spec.get(name)
        if param is None:
            if strict:
                raise invalid(UNKNOWN_PARAMETER.format(name=key))
            continue
        if modifier and modifier not in param.modifiers:
            raise invalid(UNKNOWN_MODIFIER.format(name=name, modifier=modifier))
        for raw in params[key]:
            values = split_values(raw)
            if not values:
                raise invalid(EMPTY_VALUE.format(name=key))
            queryset = param.apply(queryset, values, modifier or None)
            applied.append((key, raw))
    return AppliedSearch(queryset=queryset, applied=applied)
