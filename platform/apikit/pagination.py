"""Cursor pagination: stable under concurrent inserts, page_size capped at 200 (clamped). Every
list it serves also answers ``?paginate=page`` with numbered pages and metadata
(apikit.page_numbers), in the same ordering."""

import contextlib
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, connections, transaction
from django.db.models import QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import CursorPagination as DRFCursorPagination
from rest_framework.pagination import PageNumberPagination as DRFPageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response

from apikit.page_numbers import (
    BEYOND_COUNT_LIMIT,
    CURSOR_WITH_PAGES,
    META_SCHEMA,
    PAGE_MODE,
    NumberedPage,
    count_limit,
    numbered_page,
    paginate_mode,
    schema_parameters,
    with_id_tiebreak,
)


class CursorPagination(DRFCursorPagination):
    """Orders by the view's ``cursor_ordering`` (a unique, unchanging column such as the UUIDv7
    id) unless the client asks for an allowed ``?ordering=``."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"

    invalid_cursor_message = "The cursor is invalid; use the next or previous link as given."
    # Set by paginate_queryset when the request asked for numbered pages (``?paginate=page``).
    numbered: NumberedPage | None = None

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        self.numbered = None
        if paginate_mode(request.query_params) == PAGE_MODE:
            return self.paginate_numbered(queryset, request, view)
        if not request.query_params.get(self.cursor_query_param):
            return super().paginate_queryset(queryset, request, view)
        # The cursor's position is compared with the ordering column: text where the column holds
        # numbers, dates or UUIDs fails in the ORM (ValueError, ValidationError) or in PostgreSQL
        # (DataError: out-of-range dates and offsets, NUL bytes). Any of them is a bad cursor.
        try:
            with _savepoint_if_in_transaction(queryset):
                return super().paginate_queryset(queryset, request, view)
        except (ValueError, TypeError, DjangoValidationError, DataError):
            raise ValidationError(
                {self.cursor_query_param: [self.invalid_cursor_message]}
            ) from None

    def paginate_numbered(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: Any
    ) -> list[Any]:
        if request.query_params.get(self.cursor_query_param):
            raise ValidationError({self.cursor_query_param: [CURSOR_WITH_PAGES]})
        self.request = request
        page_size = self.get_page_size(request) or type(self).page_size
        self.numbered = numbered_page(
            queryset,
            query_params=request.query_params,
            page_size=page_size,
            ordering=self.page_ordering(request, queryset, view),
            row_limit=self.page_row_limit(page_size),
            beyond_limit_detail=self.page_beyond_limit_detail(),
        )
        return self.numbered.rows

    # --- hooks of the numbered mode (clinical's ranked search changes them) ---------------------

    def page_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...] | None:
        """The cursor mode's ordering with an id tiebreak; None keeps the queryset's own."""
        return with_id_tiebreak(self.get_ordering(request, queryset, view))

    def page_row_limit(self, page_size: int) -> int:
        return count_limit()

    def page_beyond_limit_detail(self) -> str:
        return BEYOND_COUNT_LIMIT

    def get_paginated_response(self, data: Any) -> Response:
        if self.numbered is not None:
            return Response(self.numbered.body(data, url=self.request.build_absolute_uri()))
        return super().get_paginated_response(data)

    def get_paginated_response_schema(self, schema: Any) -> dict[str, Any]:
        document: dict[str, Any] = super().get_paginated_response_schema(schema)
        document["properties"]["meta"] = META_SCHEMA
        return document

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().get_schema_operation_parameters(view)
        return [*parameters, *schema_parameters()]

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except NotFound:
            # A malformed cursor is a client error, not a missing resource.
            raise ValidationError(
                {self.cursor_query_param: [self.invalid_cursor_message]}
            ) from None

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        ordering = getattr(view, "cursor_ordering", None)
        if ordering and "ordering" not in request.query_params:
            return (ordering,) if isinstance(ordering, str) else tuple(ordering)
        # An explicit ?ordering= (already checked against the allowlist) wins.
        return tuple(super().get_ordering(request, queryset, view))


def _savepoint_if_in_transaction(queryset: Any) -> Any:
    """A savepoint around the page query when a transaction is open, so a refused position
    leaves it usable; outside one (autocommit, the usual case) nothing is added."""
    using = getattr(queryset, "db", None)
    if using is not None and connections[using].in_atomic_block:
        return transaction.atomic(using=using)
    return contextlib.nullcontext()


class PageNumberPagination(DRFPageNumberPagination):
    """For views that need totals: ``{"results", "next", "previous", "meta": {count, total_pages,
    current_page}}``. Costs a COUNT per page; prefer the cursor paginator for large tables."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_paginated_response(self, data: Any) -> Response:
        page: Any = self.page
        return Response(
            {
                "results": data,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "meta": {
                    "count": page.paginator.count,
                    "total_pages": page.paginator.num_pages,
                    "current_page": page.number,
                },
            }
        )
