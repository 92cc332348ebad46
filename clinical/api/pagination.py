"""Cursor pagination, except for ranked searches: a rank is not a unique, monotonic column a
cursor can resume from, so ``?search=`` results are paged by position (``?page=``). With
``?paginate=page`` a ranked search gets the numbered pages' metadata too, counted up to the
pages a search reaches (MAX_SEARCH_PAGES)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from apikit.page_numbers import PAGE_MODE, paginate_mode
from apikit.pagination import CursorPagination

PAGE_INVALID = "page must be a positive integer."
MAX_SEARCH_PAGES = 50
SEARCH_BEYOND_LIMIT = (
    "Search results are numbered up to row {limit} (page {last_page} at this page_size); "
    "narrow the search to see the rest."
)


class SearchAwarePagination(CursorPagination):
    search_param = "search"
    page_query_param = "page"

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        self._ranked = bool(request.query_params.get(self.search_param, "").strip())
        if not self._ranked or paginate_mode(request.query_params) == PAGE_MODE:
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        self.page_size = self.get_page_size(request) or CursorPagination.page_size
        raw = request.query_params.get(self.page_query_param, "1")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_SEARCH_PAGES:
            raise ValidationError({self.page_query_param: [PAGE_INVALID]})
        self._page = int(raw)
        start = (self._page - 1) * self.page_size
        # One row more than the page tells whether a next page exists, without a COUNT.
        rows = list(queryset[start : start + self.page_size + 1])
        self._has_next = len(rows) > self.page_size and self._page < MAX_SEARCH_PAGES
        return rows[: self.page_size]

    def page_ordering(self, request: Request, queryset: Any, view: Any) -> tuple[str, ...] | None:
        # The search backend already ordered the matches (rank, or ?ordering=, then id).
        return None if self._ranked else super().page_ordering(request, queryset, view)

    def page_row_limit(self, page_size: int) -> int:
        limit = super().page_row_limit(page_size)
        return min(limit, MAX_SEARCH_PAGES * page_size) if self._ranked else limit

    def page_beyond_limit_detail(self) -> str:
        return SEARCH_BEYOND_LIMIT if self._ranked else super().page_beyond_limit_detail()

    def get_paginated_response(self, data: Any) -> Response:
        if not self._ranked or self.numbered is not None:
            return super().get_paginated_response(data)
        url = self.request.build_absolute_uri()
        next_url = (
            replace_query_param(url, self.page_query_param, self._page + 1)
            if self._has_next
            else None
        )
        previous_url = None
        if self._page > 1:
            previous_url = (
                replace_query_param(url, self.page_query_param, self._page - 1)
                if self._page > 2
                else remove_query_param(url, self.page_query_param)
            )
        return Response({"results": data, "next": next_url, "previous": previous_url})
