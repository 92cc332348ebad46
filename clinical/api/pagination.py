"""Cursor pagination, except for ranked searches: a rank is not a unique, monotonic column a
cursor can resume from, so ``?search=`` results are paged by position (``?page=``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from apikit.pagination import CursorPagination

PAGE_INVALID = "page must be a positive integer."
MAX_SEARCH_PAGES = 50


class SearchAwarePagination(CursorPagination):
    search_param = "search"
    page_query_param = "page"

    def paginate_queryset(
        self, queryset: QuerySet[Any] | Sequence[Any], request: Request, view: Any = None
    ) -> list[Any] | None:
        self._ranked = bool(request.query_params.get(self.search_param, "").strip())
        if not self._ranked:
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

    def get_paginated_response(self, data: Any) -> Response:
        if not self._ranked:
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
