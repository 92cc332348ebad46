"""Bundle ``searchset`` pages with absolute links (fhirclient refuses relative ones).

Keyset paging over the primary key (UUIDv7: creation order), so a page costs one indexed query
however deep it is, and rows inserted meanwhile never shift a page. ``_count`` is the page size
(default 50, at most 200 like the REST API: a larger value is lowered, as FHIR allows);
``_cursor`` is the last id of the previous page, opaque to clients: they follow ``next``.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from clinical.fhir_api.search import COUNT_PARAM, CURSOR_PARAM, invalid

DEFAULT_COUNT = 50
MAX_COUNT = 200
BAD_COUNT = "_count must be a whole number from 1 (at most {max} are returned per page)."
BAD_CURSOR = "_cursor is not one this server wrote: follow the Bundle's next link."


def page_size(request: Request) -> int:
    raw = request.query_params.get(COUNT_PARAM)
    if raw is None:
        return DEFAULT_COUNT
    try:
        count = int(raw)
    except ValueError:
        raise invalid(BAD_COUNT.format(max=MAX_COUNT)) from None
    if count < 1:
        raise invalid(BAD_COUNT.format(max=MAX_COUNT))
    return min(count, MAX_COUNT)


def cursor(request: Request) -> uuid.UUID | None:
    raw = request.query_params.get(CURSOR_PARAM)
    if raw is None:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise invalid(BAD_CURSOR) from None


class BundlePagination(BasePagination):
    """DRF pagination (so apikit's base viewset audits exactly the rows of each page) whose
    response is a FHIR Bundle. The view sets ``applied`` (the search parameters it applied, for
    the ``self`` link) and ``base_url`` (the absolute search URL) before paginating."""

    applied: Sequence[tuple[str, str]] = ()
    base_url = ""

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> list[Any]:
        self.count = page_size(request)
        self.after = cursor(request)
        self.explicit_count = COUNT_PARAM in request.query_params
        ordered = queryset.order_by("pk")
        if self.after is not None:
            ordered = ordered.filter(pk__gt=self.after)
        rows = list(ordered[: self.count + 1])
        self.has_next = len(rows) > self.count
        self.page = rows[: self.count]
        return self.page

    def _link(self, *, after: Any) -> str:
        query = list(self.applied)
        if self.explicit_count or after is not None:
            query.append((COUNT_PARAM, str(self.count)))
        if after is not None:
            query.append((CURSOR_PARAM, str(after)))
        return f"{self.base_url}?{urlencode(query)}" if query else self.base_url

    def get_paginated_response(self, data: Any) -> Response:
        links = [{"relation": "self", "url": self._link(after=self.after)}]
        if self.has_next and self.page:
            links.append({"relation": "next", "url": self._link(after=self.page[-1].pk)})
        bundle = {"resourceType": "Bundle", "type": "searchset", "link": links, "entry": data}
        if not data:
            del bundle["entry"]
        return Response(bundle)
