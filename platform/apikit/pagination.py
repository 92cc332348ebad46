"""Cursor pagination: stable under concurrent inserts, page_size capped at 200 (clamped)."""

from typing import Any

from rest_framework.pagination import CursorPagination as DRFCursorPagination
from rest_framework.request import Request


class CursorPagination(DRFCursorPagination):
    """Orders by the view's ``cursor_ordering`` (a unique column or tuple ending in one)."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    ordering = "-created_at"

    def get_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...]:
        ordering = getattr(view, "cursor_ordering", None)
        if ordering:
            return (ordering,) if isinstance(ordering, str) else tuple(ordering)
        return tuple(super().get_ordering(request, queryset, view))
