"""``?paginate=page``: numbered pages with metadata, on every list the cursor paginator serves.

    {"meta": {"count", "count_exact", "total_pages", "current_page", "page_size"},
     "results", "next", "previous"}

The count is exact up to ``API_PAGE_COUNT_LIMIT`` rows. It is ``SELECT count(*) FROM (SELECT id
... LIMIT limit + 1)`` over the very queryset the page is cut from (scoped to the user's
facilities or farms, filtered, searched), so its cost is bounded by the limit and it never
counts a row the user could not list. Above the limit ``count`` is the limit, ``count_exact``
false and ``total_pages`` null, and pages starting past it are refused in favour of cursors. It is
never a planner estimate (``pg_class.reltuples``, ``EXPLAIN``): those ignore the filters and the
user's scope, so they would be wrong and would reveal the size of the whole tenant.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.utils.urls import remove_query_param, replace_query_param

from apikit.errors import APIError

PAGINATE_PARAM = "paginate"
PAGE_PARAM = "page"
CURSOR_MODE = "cursor"
PAGE_MODE = "page"
MODES = (CURSOR_MODE, PAGE_MODE)

UNKNOWN_MODE = "Unknown pagination {value!r}; use 'cursor' (the default) or 'page'."
PAGE_INVALID = "page must be a positive integer."
CURSOR_WITH_PAGES = "A cursor cannot be combined with paginate=page; send one or the other."
BEYOND_COUNT_LIMIT_CODE = "page_beyond_count_limit"
BEYOND_COUNT_LIMIT = (
    "Numbered pages reach row {limit} at most (the last is page {last_page} at this page_size); "
    "to read further, leave out paginate=page and follow the cursor links (next)."
)
PAST_LAST_PAGE = "Page {number} does not exist; the last page is {last_page}."


def paginate_mode(query_params: Any) -> str:
    """``cursor`` (the default) or ``page``; anything else is a 400."""
    value = query_params.get(PAGINATE_PARAM)
    if value is None:
        return CURSOR_MODE
    if value not in MODES:
        raise ValidationError({PAGINATE_PARAM: [UNKNOWN_MODE.format(value=value)]})
    return str(value)


def count_limit() -> int:
    return int(settings.API_PAGE_COUNT_LIMIT)


def with_id_tiebreak(ordering: Sequence[str]) -> tuple[str, ...]:
    """The cursor mode's ordering, made total: offsets over equal sort keys would otherwise
    repeat or skip rows between pages (PostgreSQL returns ties in no fixed order)."""
    if any(term.lstrip("-") in {"id", "pk"} for term in ordering):
        return tuple(ordering)
    descending = bool(ordering) and ordering[0].startswith("-")
    return (*ordering, "-id" if descending else "id")


@dataclass(frozen=True)
class NumberedPage:
    rows: list[Any]
    number: int
    page_size: int
    count: int
    count_exact: bool
    row_limit: int

    @property
    def total_pages(self) -> int | None:
        if not self.count_exact:
            return None
        # An empty list still has its (empty) first page.
        return max(1, math.ceil(self.count / self.page_size))

    @property
    def has_next(self) -> bool:
        if self.total_pages is not None:
            return self.number < self.total_pages
        # More than ``row_limit`` rows exist: the next page exists; it is offered while it
        # starts within the limit (pages past it are refused).
        return self.number * self.page_size < self.row_limit

    def meta(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "count_exact": self.count_exact,
            "total_pages": self.total_pages,
            "current_page": self.number,
            "page_size": self.page_size,
        }

    def body(self, data: Any, *, url: str) -> dict[str, Any]:
        """The response body; ``url`` is the request's absolute URL (the tenant's host), whose
        other parameters (filters, ordering, page_size, paginate) the links keep."""
        next_url = replace_query_param(url, PAGE_PARAM, self.number + 1) if self.has_next else None
        previous_url = None
        if self.number > 1:
            previous_url = (
                remove_query_param(url, PAGE_PARAM)
                if self.number == 2
                else replace_query_param(url, PAGE_PARAM, self.number - 1)
            )
        return {"meta": self.meta(), "results": data, "next": next_url, "previous": previous_url}


def page_number(query_params: Any) -> int:
    raw = query_params.get(PAGE_PARAM, "1")
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise ValidationError({PAGE_PARAM: [PAGE_INVALID]})
    return int(raw)


def numbered_page(
    queryset: QuerySet[Any] | Sequence[Any],
    *,
    query_params: Any,
    page_size: int,
    ordering: Sequence[str] | None,
    row_limit: int,
    beyond_limit_detail: str = BEYOND_COUNT_LIMIT,
) -> NumberedPage:
    """Page ``?page=`` of ``queryset`` in ``ordering`` (None: as the queryset is ordered).
    Two queries: the bounded count, then the page's rows."""
    number = page_number(query_params)
    offset = (number - 1) * page_size
    last_reachable = max(1, math.ceil(row_limit / page_size))
    if offset >= row_limit:
        # Refused before any query: the offset scan would be as expensive as the count we bound.
        raise APIError(
            status=400,
            code=BEYOND_COUNT_LIMIT_CODE,
            detail=beyond_limit_detail.format(limit=row_limit, last_page=last_reachable),
            extra={"count_limit": row_limit, "last_page": last_reachable},
        )
    if isinstance(queryset, QuerySet):
        if ordering is not None:
            queryset = queryset.order_by(*ordering)
        # Only the ids, unordered, at most limit + 1 of them: Django counts a sliced queryset as
        # SELECT count(*) FROM (SELECT id ... LIMIT n) subquery.
        counted = queryset.order_by().values("pk")[: row_limit + 1].count()
    else:
        counted = min(len(queryset), row_limit + 1)
    count_exact = counted <= row_limit
    page = NumberedPage(
        rows=[],
        number=number,
        page_size=page_size,
        count=min(counted, row_limit),
        count_exact=count_exact,
        row_limit=row_limit,
    )
    if page.total_pages is not None and number > page.total_pages:
        raise NotFound(PAST_LAST_PAGE.format(number=number, last_page=page.total_pages))
    rows = list(queryset[offset : offset + page_size])
    return NumberedPage(
        rows=rows,
        number=number,
        page_size=page_size,
        count=page.count,
        count_exact=count_exact,
        row_limit=row_limit,
    )


def schema_parameters() -> list[dict[str, Any]]:
    """The two query parameters, for the OpenAPI document of every paginated list."""
    return [
        {
            "name": PAGINATE_PARAM,
            "required": False,
            "in": "query",
            "description": (
                "`cursor` (default): cursor links only. `page`: numbered pages (`page`) with "
                "`meta` (count exact up to a limit, total_pages, current_page, page_size)."
            ),
            "schema": {"type": "string", "enum": list(MODES)},
        },
        {
            "name": PAGE_PARAM,
            "required": False,
            "in": "query",
            "description": "Page number (1-based), with paginate=page.",
            "schema": {"type": "integer", "minimum": 1},
        },
    ]


META_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Only with paginate=page.",
    "required": ["count", "count_exact", "total_pages", "current_page", "page_size"],
    "properties": {
        "count": {"type": "integer", "description": "Exact when count_exact, else the limit."},
        "count_exact": {"type": "boolean"},
        "total_pages": {"type": "integer", "nullable": True},
        "current_page": {"type": "integer"},
        "page_size": {"type": "integer"},
    },
}
