"""The base viewset: locked plumbing, role checks and container scoping (404 outside scope)."""

from typing import Any

import pytest
from django_tenants.utils import tenant_context

from apikit.policy import AccessLevel, container_access_grant, container_access_revoke
from apikit.viewsets import TenantScopedViewSet
from tests.apikit.conftest import ITEM_ID, OTHER_ITEM_ID, STAFF_PASSWORD, ToyWorld, make_staff
from tests.apikit.toy.models import Item
from tests.conftest import login

pytestmark = pytest.mark.urls("tests.apikit.urls")


@pytest.mark.parametrize(
    "method",
    [
        "get_queryset",
        "get_object",
        "get_permissions",
        "get_authenticators",
        "dispatch",
        "initial",
        "as_view",
        "finalize_response",
    ],
)
def test_subclasses_cannot_override_the_locked_plumbing(method: str) -> None:
    with pytest.raises(TypeError, match=f"must not override {method}"):
        type("Sneaky", (TenantScopedViewSet,), {method: lambda self: None})


def test_subclasses_may_implement_the_scoping_hook() -> None:
    class Fine(TenantScopedViewSet):
        model = Item

        def scoped_queryset(self) -> Any:
            return Item.objects.none()

    assert Fine.model is Item


def test_the_base_viewset_uses_drfs_own_dispatch_and_initial() -> None:
    """Issue 22 item 3: the guarantees come from public hooks, not a copy of DRF's dispatch."""
    from rest_framework.views import APIView

    assert TenantScopedViewSet.dispatch is APIView.dispatch
    assert TenantScopedViewSet.initial is APIView.initial


def test_every_post_route_runs_its_handler_idempotently() -> None:
    """Whatever a POST route maps to (create, an extra action, a hand-written route), as_view()
    wraps it once; other methods' handlers are left alone."""
    from rest_framework.decorators import action

    class Posts(TenantScopedViewSet):
        model = Item

        def create(self, request: Any) -> Any:
            return None

        @action(detail=True, methods=["post"])
        def archive(self, request: Any, pk: str) -> Any:
            return None

        def smuggle(self, request: Any) -> Any:
            return None

        def summary(self, request: Any) -> Any:
            return None

    for name in ("create", "archive", "smuggle"):
        Posts.as_view({"post": name})
        wrapped = getattr(Posts, name)
        assert wrapped.runs_idempotently
        Posts.as_view({"post": name})
        assert getattr(Posts, name) is wrapped  # not wrapped twice
    assert Posts.archive.mapping == {"post": "archive"}
    Posts.as_view({"get": "summary"})
    assert not hasattr(Posts.summary, "runs_idempotently")


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


def test_tenant_admin_sees_every_item_of_its_tenant_only(
    toy_alpha: ToyWorld, toy_beta: ToyWorld
) -> None:
    response = login(toy_alpha.world).get("/api/v1/toy/items/")
    assert sorted(_ids(response)) == sorted([str(ITEM_ID), str(OTHER_ITEM_ID)])
    names = {row["name"] for row in response.json()["results"]}
    assert names == {"alpha hoe", "alpha rake"}  # same ids exist in beta, with beta's names


def test_staff_see_only_containers_granted_to_them(toy_alpha: ToyWorld) -> None:
    staff = make_staff(toy_alpha.world)
    client = login(toy_alpha.world, email="staff@example.com", password=STAFF_PASSWORD)
    assert _ids(client.get("/api/v1/toy/items/")) == []
    assert client.get(f"/api/v1/toy/items/{ITEM_ID}/").status_code == 404

    with tenant_context(toy_alpha.world.tenant):
        container_access_grant(user=staff, container=toy_alpha.site, level=AccessLevel.VIEW)
    assert _ids(client.get("/api/v1/toy/items/")) == [str(ITEM_ID)]
    assert client.get(f"/api/v1/toy/items/{ITEM_ID}/").status_code == 200
    outside = client.get(f"/api/v1/toy/items/{OTHER_ITEM_ID}/")
    assert outside.status_code == 404
    assert outside.json()["error"]["code"] == "not_found"
    # Filtering by a site outside the grant reveals nothing either.
    assert _ids(client.get(f"/api/v1/toy/items/?site={toy_alpha.other_site.pk}")) == []

    with tenant_context(toy_alpha.world.tenant):
        container_access_revoke(user=staff, container=toy_alpha.site, level=AccessLevel.VIEW)
    assert client.get(f"/api/v1/toy/items/{ITEM_ID}/").status_code == 404


def test_writes_need_manage_on_the_container(toy_alpha: ToyWorld) -> None:
    staff = make_staff(toy_alpha.world)
    client = login(toy_alpha.world, email="staff@example.com", password=STAFF_PASSWORD)
    payload = {"site": str(toy_alpha.site.pk), "name": "spade", "quantity": 1}
    with tenant_context(toy_alpha.world.tenant):
        container_access_grant(user=staff, container=toy_alpha.site, level=AccessLevel.VIEW)
    refused = client.post("/api/v1/toy/items/", payload, format="json")
    assert refused.status_code == 400
    assert refused.json()["error"]["fields"] == {"site": ["No such site, or you cannot manage it."]}

    with tenant_context(toy_alpha.world.tenant):
        container_access_grant(user=staff, container=toy_alpha.site, level=AccessLevel.MANAGE)
        assert not Item.objects.filter(name="spade").exists()
    created = client.post("/api/v1/toy/items/", payload, format="json")
    assert created.status_code == 201
    assert created.json()["created_by"] == str(staff.pk)


def test_grants_in_one_tenant_mean_nothing_in_another(
    toy_alpha: ToyWorld, toy_beta: ToyWorld
) -> None:
    """Guardian rows live in each tenant schema: the same user id and object id elsewhere is
    unrelated."""
    staff_alpha = make_staff(toy_alpha.world)
    make_staff(toy_beta.world)
    with tenant_context(toy_alpha.world.tenant):
        container_access_grant(user=staff_alpha, container=toy_alpha.site, level=AccessLevel.VIEW)
    beta_client = login(toy_beta.world, email="staff@example.com", password=STAFF_PASSWORD)
    assert _ids(beta_client.get("/api/v1/toy/items/")) == []


def test_server_managed_fields_in_the_body_are_ignored(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).post(
        "/api/v1/toy/items/",
        {
            "site": str(toy_alpha.site.pk),
            "name": "spade",
            "quantity": 1,
            "version": 77,
            "created_by": "01900000-0000-7000-8000-000000000001",
            "archived_at": "2020-01-01T00:00:00Z",
            "id": str(ITEM_ID),
        },
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert body["version"] == 1
    assert body["created_by"] == str(toy_alpha.admin.pk)
    assert body["id"] != str(ITEM_ID)
