"""The API's one JSON encoder: every DRF response (``JSONRenderer`` is REST_FRAMEWORK's only JSON
renderer, and no view names another) and the bytes the sync endpoints write themselves (pull
pages, push answers, the streamed first sync) and the clinical NDJSON export go through ``dumps``.

orjson with ``OPT_PASSTHROUGH_DATETIME | OPT_NON_STR_KEYS``; what orjson does not write itself is
written here, and anything else is a ``TypeError`` (a 500 envelope), never a guessed value:

- ``datetime``: UTC, ISO 8601, microseconds always and ``Z`` (``2026-12-06T05:54:19.000000Z``),
  the same text as REST_FRAMEWORK's ``DATETIME_FORMAT`` in serializers (DESIGN 5). An aware
  value in another zone is converted. A naive one is refused: with ``USE_TZ`` on it is a bug
  (which zone was meant?), and writing it as UTC would silently shift it.
- ``date``: ``YYYY-MM-DD``; ``time``: ``HH:MM:SS[.ffffff]`` as DRF's encoder writes them; an
  aware ``time`` is refused (as DRF's encoder does).
- ``Decimal``: a string (``str(value)``), as DRF's serializers write decimals
  (``COERCE_DECIMAL_TO_STRING``) and as the clinical and sync encoders did; never a float.
- Django's lazy translation strings (``Promise``): the translated text, as DRF's encoder.
- ``UUID``, ``str``/``int``/``dict``/``list`` subclasses (``ErrorDetail``, ``ReturnDict``),
  enums, dataclasses: orjson's own (the canonical UUID text; enums by value).
- ``orjson.Fragment``: inserted as is (sync pull pages hold rows PostgreSQL already rendered).

Unlike DRF's encoder: no sets, generators, querysets or bytes (``TypeError``; build a list or a
string in the view), NaN and infinities are written as ``null`` (orjson; DRF's ``STRICT_JSON``
raised), U+2028/U+2029 are not escaped (JSON is a subset of JavaScript since ES2019), and an
indent (``Accept: application/json; indent=4``, the browsable API) is always two spaces. Dict
keys that are datetimes are written by orjson itself (RFC 3339 with the value's own offset): no
endpoint uses them, and none should.

drf-orjson-renderer was considered and rejected: it writes unknown types as ``null`` and its UTC
option drops zero microseconds.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Mapping
from typing import Any

import orjson
from django.utils.functional import Promise
from rest_framework import renderers

OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_UTC = datetime.UTC


def _default(value: Any) -> Any:
    # Most frequent first: list pages carry a timestamp per row.
    if isinstance(value, datetime.datetime):
        if value.utcoffset() is None:
            raise TypeError(
                f"naive datetime {value.isoformat()} is not JSON serializable: "
                "make it aware (USE_TZ is on) before rendering"
            )
        if value.tzinfo is not _UTC:
            value = value.astimezone(_UTC)
        # isoformat ends "+00:00" for UTC; timespec keeps zero microseconds.
        return value.isoformat(timespec="microseconds")[:-6] + "Z"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, datetime.time):
        if value.utcoffset() is not None:
            raise TypeError(f"aware time {value.isoformat()} is not JSON serializable")
        return value.isoformat()
    if isinstance(value, Promise):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any, *, indent: bool = False) -> bytes:
    """``value`` as compact UTF-8 JSON (two-space indented with ``indent``); ``TypeError`` for a
    type not listed in the module's docstring."""
    option = OPTIONS | orjson.OPT_INDENT_2 if indent else OPTIONS
    return orjson.dumps(value, default=_default, option=option)


class JSONRenderer(renderers.JSONRenderer):
    """DRF's JSON renderer (``application/json``, format ``json``, empty body for ``None``),
    with the bytes from ``dumps``."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        indent = self.get_indent(accepted_media_type or "", renderer_context or {})
        return dumps(data, indent=bool(indent))
