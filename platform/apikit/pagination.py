"""Cursor pagination: stable under concurrent inserts, page_size capped at 200 (clamped)."""

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


class CursorPagination(DRFCursorPagination):
    """Orders by the view's ``cursor_ordering`` (a unique, unchanging column such as the UUIDv7
    id) unless the client asks for an allowed ``?ordering=``."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"

    invalid_cursor_message = "The cursor is invalid; use the next or previous link as given."

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
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
