"""Cursor and page-number pagination, FilterSets, the ordering allowlist, search."""

from typing import Any

import pytest
from django_tenants.utils import tenant_context

from tests.apikit.conftest import ToyWorld
from tests.apikit.toy.models import Item
from tests.conftest import login
from tests.query_budget import assert_constant_queries

pytestmark = pytest.mark.urls("tests.apikit.urls")
URL = "/api/v1/toy/items/"


def _add_items(world: ToyWorld, count: int, *, start: int = 0) -> None:
    with tenant_context(world.world.tenant):
        Item.objects.bulk_create(
            Item(site=world.site, name=f"item {start + n:03d}", quantity=n % 7)
            for n in range(count)
        )


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["name"] for row in response.json()["results"]]


def test_cursor_pages_are_stable_under_concurrent_inserts(toy_alpha: ToyWorld) -> None:
    _add_items(toy_alpha, 10)
    client = login(toy_alpha.world)
    first = client.get(URL, {"page_size": 5})
    seen = _names(first)
    _add_items(toy_alpha, 3, start=100)  # newer rows arrive while the client pages
    page = first.json()
    while page["next"]:
        response = client.get(page["next"])
        seen += _names(response)
        page = response.json()
    assert len(seen) == 12  # the 12 rows that existed...
    assert len(set(seen)) == 12  # ...none twice
    assert not {"item 100", "item 101", "item 102"} & set(seen)


def test_page_size_is_clamped_to_200(toy_alpha: ToyWorld) -> None:
    _add_items(toy_alpha, 205)
    response = login(toy_alpha.world).get(URL, {"page_size": 5000})
    assert len(_names(response)) == 200


def test_malformed_cursor_is_400(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).get(URL, {"cursor": "bz1hYmM="})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "cursor": ["The cursor is invalid; use the next or previous link as given."]
    }


def test_page_number_pagination_reports_totals(toy_alpha: ToyWorld) -> None:
    _add_items(toy_alpha, 8)
    response = login(toy_alpha.world).get("/api/v1/toy/counted-items/", {"page_size": 4, "page": 2})
    assert response.status_code == 200
    assert response.json()["meta"] == {"count": 10, "total_pages": 3, "current_page": 2}
    out_of_range = login(toy_alpha.world).get("/api/v1/toy/counted-items/", {"page": 99})
    assert out_of_range.status_code == 404
    assert out_of_range.json()["error"]["code"] == "not_found"


def test_filters_narrow_and_invalid_values_are_400(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    assert _names(client.get(URL, {"colour": "red"})) == ["alpha hoe"]
    assert _names(client.get(URL, {"min_quantity": 4})) == ["alpha rake"]
    for params, field in [
        ({"min_quantity": "lots"}, "min_quantity"),
        ({"site": "not-a-uuid"}, "site"),
        ({"created_after": "yesterday"}, "created_after"),
    ]:
        response = client.get(URL, params)
        assert response.status_code == 400, params
        assert response.json()["error"]["code"] == "validation_error"
        assert field in response.json()["error"]["fields"]


def test_ordering_uses_the_allowlist_only(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    assert _names(client.get(URL, {"ordering": "-quantity"})) == ["alpha rake", "alpha hoe"]
    assert _names(client.get(URL, {"ordering": "name"})) == ["alpha hoe", "alpha rake"]
    for bad in ("colour", "site__name", "-version", "name,password"):
        response = client.get(URL, {"ordering": bad})
        assert response.status_code == 400, bad
        assert "ordering" in response.json()["error"]["fields"]


def test_search_covers_the_declared_fields(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    assert _names(client.get(URL, {"search": "RAKE"})) == ["alpha rake"]
    assert _names(client.get(URL, {"search": "red"})) == []  # colour is not a search field


def test_list_query_count_is_constant(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    with tenant_context(toy_alpha.world.tenant):
        Item.objects.all().delete()
    assert_constant_queries(
        fetch=lambda: client.get(URL, {"page_size": 100}),
        add_rows=lambda n: _add_items(toy_alpha, n),
        expected_rows=lambda response: len(response.json()["results"]),
    )
