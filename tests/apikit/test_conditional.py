"""ETags, If-None-Match, If-Match, version checks, soft delete."""

import pytest
from django_tenants.utils import tenant_context

from apikit.concurrency import versioned_update
from apikit.errors import APIError
from tests.apikit.conftest import ITEM_ID, ToyWorld
from tests.apikit.toy.models import Item
from tests.conftest import login

pytestmark = pytest.mark.urls("tests.apikit.urls")
URL = f"/api/v1/toy/items/{ITEM_ID}/"


def test_detail_carries_an_etag_and_if_none_match_answers_304(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    first = client.get(URL)
    assert first.status_code == 200
    assert first["ETag"] == 'W/"1"'
    not_modified = client.get(URL, HTTP_IF_NONE_MATCH='W/"1"')
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified["ETag"] == 'W/"1"'
    assert client.get(URL, HTTP_IF_NONE_MATCH='"0", W/"7"').status_code == 200


def test_write_bumps_version_and_etag(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    response = client.patch(URL, {"quantity": 9}, format="json", HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 200
    assert response.json()["version"] == 2
    assert response["ETag"] == 'W/"2"'
    assert client.get(URL, HTTP_IF_NONE_MATCH='W/"1"').status_code == 200
    with tenant_context(toy_alpha.world.tenant):
        item = Item.objects.get(pk=ITEM_ID)
        assert (item.quantity, item.version, item.updated_by_id) == (9, 2, toy_alpha.admin.pk)


def test_stale_if_match_is_412_and_changes_nothing(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    client.patch(URL, {"quantity": 9}, format="json")
    response = client.patch(URL, {"quantity": 1}, format="json", HTTP_IF_MATCH='W/"1"')
    assert response.status_code == 412
    assert response.json()["error"]["code"] == "precondition_failed"
    with tenant_context(toy_alpha.world.tenant):
        assert Item.objects.get(pk=ITEM_ID).quantity == 9


def test_stale_body_version_is_409(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    assert client.patch(URL, {"quantity": 4, "version": 1}, format="json").status_code == 200
    response = client.patch(URL, {"quantity": 5, "version": 1}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "version_conflict"
    assert "you sent version 1, it is now 2" in error["detail"]
    bad = client.patch(URL, {"quantity": 5, "version": "two"}, format="json")
    assert bad.status_code == 400
    assert bad.json()["error"]["fields"] == {"version": ["Must be an integer."]}


def test_racing_writers_cannot_both_apply_the_same_version(toy_alpha: ToyWorld) -> None:
    """The check and the bump are one UPDATE: the second writer holding version 1 loses."""
    with tenant_context(toy_alpha.world.tenant):
        item = Item.objects.get(pk=ITEM_ID)
        versioned_update(instance=item, expected_version=1, changes={"quantity": 10}, actor=None)
        with pytest.raises(APIError) as excinfo:
            versioned_update(
                instance=item, expected_version=1, changes={"quantity": 20}, actor=None
            )
        assert excinfo.value.contract_code == "version_conflict"
        assert Item.objects.get(pk=ITEM_ID).quantity == 10


def test_delete_archives_and_hides_the_row(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    assert client.delete(URL).status_code == 204
    assert client.get(URL).status_code == 404
    ids = [row["id"] for row in client.get("/api/v1/toy/items/").json()["results"]]
    assert str(ITEM_ID) not in ids
    with tenant_context(toy_alpha.world.tenant):
        archived = Item.all_objects.get(pk=ITEM_ID)
        assert archived.is_archived
        assert archived.version == 2
        assert not Item.objects.filter(pk=ITEM_ID).exists()
