"""Issue 21, item 7: a malformed cursor, page or ordering combination is a 400 envelope, never a
500, on every list route (read from the URL conf, tests/security/routes.py).

For each collection route and each ordering the route allows (plus its default cursor ordering),
cursors are crafted the way DRF encodes them (base64 of ``o=<offset>&r=<reverse>&p=<position>``)
with junk positions: text where a number, date, time or UUID is expected, out-of-range dates and
time zone offsets PostgreSQL refuses, NUL bytes, numbers too long to parse, negative offsets,
bad base64, and very long cursors. A position that happens to be valid for the column may page
normally (200); anything else must be the 400 envelope naming ``cursor``.
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.db import models

from apikit.pagination import CursorPagination
from tests.security.conftest import SecurityWorld
from tests.security.routes import SHARED_IDS, Route, api_routes

pytestmark = pytest.mark.security


def _cursor(**tokens: str) -> str:
    return base64.b64encode(urlencode(tokens).encode()).decode()


# name -> (cursor, whether it can never be a valid position for a non-text column)
JUNK_CURSORS: dict[str, str] = {
    "p-text": _cursor(p="abc"),
    "p-empty": _cursor(p=""),
    "p-bad-date": _cursor(p="9999-99-99"),
    "p-uuid": _cursor(p=str(uuid.uuid4())),
    "p-tz-offset": _cursor(p="9999-12-31T23:59:59-23:59"),
    "p-tz-offset-low": _cursor(p="0001-01-01T00:00:00+23:59"),
    "p-nul": _cursor(p="a\x00b"),
    "p-long-number": _cursor(p="9" * 5000),
    "p-float-overflow": _cursor(p="1e999"),
    "p-nan": _cursor(p="NaN"),
    "p-reversed-text": _cursor(r="1", p="abc"),
    "reverse-only": _cursor(r="1"),
    "reverse-junk": _cursor(r="abc"),
    "offset-negative": _cursor(o="-5"),
    "offset-text": _cursor(o="abc", p="abc"),
    "offset-huge": _cursor(o="9" * 50, p="abc"),
    "not-base64": "%%%not-base64%%%",
    "bad-padding": "cD1hYm",
    "non-ascii": base64.b64encode("p=é".encode()).decode(),
    "huge": _cursor(p="x" * 20_000),
}
# Cursors no column can accept: always 400.
ALWAYS_INVALID = {
    "reverse-junk",
    "offset-negative",
    "offset-text",
    "not-base64",
    "bad-padding",
    "non-ascii",
    "p-nul",
}
TEXT_FIELDS = (models.CharField, models.TextField)


def _view_class(route: Route) -> Any:
    return getattr(route.callback, "cls", None) or getattr(route.callback, "view_class", None)


def _body(response: Any) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return bytes(response.content)


def _is_cursor_page(response: Any) -> bool:
    """A page of the cursor paginator: ``{"results", "next", "previous"}``."""
    if response.status_code != 200 or response.get("Content-Type") != "application/json":
        _body(response)
        return False
    body = json.loads(_body(response))
    return isinstance(body, dict) and {"results", "next", "previous"} <= body.keys()


def _orderings(route: Route) -> list[str | None]:
    """None (the view's cursor ordering) and every allowed field, ascending, plus one descending."""
    fields = list(getattr(_view_class(route), "ordering_fields", None) or [])
    return [None, *fields, *([f"-{fields[0]}"] if fields else [])]


def _column(route: Route, ordering: str | None) -> Any:
    view_class = _view_class(route)
    model = getattr(view_class, "model", None)
    name = ordering or getattr(view_class, "cursor_ordering", None) or ""
    try:
        return model._meta.get_field(name.lstrip("-")) if model is not None else None
    except Exception:  # a related path or an annotation: no type to reason about
        return None


def _must_refuse(route: Route, ordering: str | None, junk: str) -> bool:
    if junk in ALWAYS_INVALID:
        return True
    column = _column(route, ordering)
    if column is None or isinstance(column, TEXT_FIELDS):
        return False
    # Text that is no number, date, time or UUID can never be a position on such a column.
    return junk in {"p-text", "p-empty", "p-bad-date", "p-reversed-text", "huge", "offset-huge"}


# Every readable collection: the paginated lists, and the summaries and exports, which must
# ignore a cursor rather than fail on it.
LIST_ROUTES = [
    route for route in api_routes() if route.kind == "collection" and "GET" in route.methods
]


def test_the_fuzz_covers_the_list_routes() -> None:
    names = {route.name for route in LIST_ROUTES}
    assert {
        "clinical-patient-list",
        "farms-observation-list",
        "audit-event-list",
        "user-list",
    } <= names
    assert len(names) >= 12, names
    # Every paginated list uses the one cursor paginator this test is about.
    for route in LIST_ROUTES:
        pagination = getattr(_view_class(route), "pagination_class", None)
        assert pagination is None or issubclass(pagination, CursorPagination), route.name


def _assert_cursor_refused(response: Any, label: str) -> None:
    assert response.status_code == 400, (label, response.status_code, response.content[:300])
    error = response.json()["error"]
    assert error["status"] == 400
    assert error["code"] == "validation_error"
    assert "cursor" in error["fields"], (label, error)


@pytest.mark.parametrize("route", LIST_ROUTES, ids=[route.name for route in LIST_ROUTES])
def test_malformed_cursors_are_400_on_every_list_route(sw: SecurityWorld, route: Route) -> None:
    client = sw.client(sw.a, "tenant_admin")
    path = route.path(SHARED_IDS)
    first = client.get(path)
    assert first.status_code == 200, path
    if not _is_cursor_page(first):
        # Not paginated (a summary, an export): a cursor is ignored, never a failure.
        for junk, cursor in JUNK_CURSORS.items():
            response = client.get(path, {"cursor": cursor})
            assert response.status_code == 200, (route.name, junk)
            _body(response)
        return
    for ordering in _orderings(route):
        for junk, cursor in JUNK_CURSORS.items():
            params = {"cursor": cursor, **({"ordering": ordering} if ordering else {})}
            response = client.get(path, params)
            label = f"{route.name} ordering={ordering} cursor={junk}"
            if _must_refuse(route, ordering, junk):
                _assert_cursor_refused(response, label)
                continue
            assert response.status_code in {200, 400}, (label, response.content[:300])
            if response.status_code == 400:
                _assert_cursor_refused(response, label)
            else:
                assert isinstance(response.json()["results"], list), label


def test_the_issue_example_is_a_400(sw: SecurityWorld) -> None:
    response = sw.client(sw.a, "tenant_admin").get(
        "/api/v1/clinical/patients/", {"ordering": "visit_count", "cursor": _cursor(p="abc")}
    )
    _assert_cursor_refused(response, "visit_count p=abc")


def test_a_cursor_made_for_one_ordering_is_refused_under_another(sw: SecurityWorld) -> None:
    client = sw.client(sw.a, "tenant_admin")
    first = client.get("/api/v1/clinical/patients/", {"ordering": "mrn", "page_size": "1"})
    assert first.status_code == 200
    next_url = first.json()["next"]
    assert next_url, "the world seeds two patients in A"
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    assert base64.b64decode(cursor).decode() == "p=MRN-1"
    for ordering in ("visit_count", "birth_date", "created_at"):
        response = client.get(
            "/api/v1/clinical/patients/", {"ordering": ordering, "cursor": cursor}
        )
        # The position "MRN-1" means nothing on these columns.
        _assert_cursor_refused(response, ordering)
    follow = client.get(next_url)
    assert follow.status_code == 200
    assert len(follow.json()["results"]) == 1


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1e3", "99999", "", "1.5"])
def test_malformed_search_pages_are_400(sw: SecurityWorld, page: str) -> None:
    response = sw.client(sw.a, "tenant_admin").get(
        "/api/v1/clinical/patients/",
        {"search": "Lovelace", "page": page, "cursor": JUNK_CURSORS["p-text"]},
    )
    if page == "":
        # An empty page is the first page (the parameter is simply absent).
        assert response.status_code in {200, 400}, response.content[:300]
        return
    assert response.status_code == 400, (page, response.content[:300])
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "page" in error["fields"]


@pytest.mark.parametrize("page_size", ["abc", "-1", "0", "9" * 50, ""])
def test_junk_page_sizes_with_junk_cursors_never_500(sw: SecurityWorld, page_size: str) -> None:
    response = sw.client(sw.a, "tenant_admin").get(
        "/api/v1/farms/crops/",
        {"page_size": page_size, "ordering": "created_at", "cursor": JUNK_CURSORS["p-text"]},
    )
    _assert_cursor_refused(response, f"page_size={page_size}")
