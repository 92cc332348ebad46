"""Cursor pagination: stable under concurrent inserts, page_size capped at 200 (clamped)."""

from typing import Any

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
