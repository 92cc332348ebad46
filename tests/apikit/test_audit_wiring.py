"""The base viewset audits every successful write, every authenticated refusal, and reads of
sensitive resources; logins are audited too. Events stay in their tenant."""

import pytest
from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from tests.apikit.conftest import ITEM_ID, STAFF_PASSWORD, ToyWorld, make_staff
from tests.conftest import ADMIN_EMAIL, CLINICIAN_ID, TenantWorld, login

pytestmark = pytest.mark.urls("tests.apikit.urls")


def _events(world: TenantWorld, **filters: object) -> list[AuditEvent]:
    with tenant_context(world.tenant):
        return list(AuditEvent.objects.filter(**filters).order_by("id"))


def test_create_update_delete_are_each_one_event(toy_alpha: ToyWorld, toy_beta: ToyWorld) -> None:
    client = login(toy_alpha.world)
    created = client.post(
        "/api/v1/toy/items/",
        {"site": str(toy_alpha.site.pk), "name": "spade", "quantity": 1},
        format="json",
        HTTP_X_REQUEST_ID="req-create-001",
    )
    new_id = created.json()["id"]
    client.patch(
        f"/api/v1/toy/items/{ITEM_ID}/", {"quantity": 8, "name": "alpha hoe"}, format="json"
    )
    client.delete(f"/api/v1/toy/items/{ITEM_ID}/")

    writes = _events(toy_alpha.world, object_type="toy.item")
    assert [(e.action, [str(i) for i in e.object_ids]) for e in writes] == [
        ("create", [new_id]),
        ("update", [str(ITEM_ID)]),
        ("delete", [str(ITEM_ID)]),
    ]
    assert writes[0].request_id == "req-create-001"
    assert writes[1].changed_fields == ["quantity"]  # names only, and only what changed
    assert {e.actor_email for e in writes} == {ADMIN_EMAIL}
    assert _events(toy_beta.world, object_type="toy.item") == []


def test_idempotent_replay_is_not_audited_twice(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    payload = {"site": str(toy_alpha.site.pk), "name": "spade", "quantity": 1}
    for _ in range(3):
        client.post("/api/v1/toy/items/", payload, format="json", HTTP_IDEMPOTENCY_KEY="once")
    assert len(_events(toy_alpha.world, object_type="toy.item", action="create")) == 1


def test_failed_writes_are_not_audited_as_changes(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    client.post("/api/v1/toy/items/", {"name": ""}, format="json")
    client.patch(f"/api/v1/toy/items/{ITEM_ID}/", {"quantity": 1, "version": 99}, format="json")
    assert _events(toy_alpha.world, object_type="toy.item") == []


def test_refused_requests_of_signed_in_users_are_recorded(toy_alpha: ToyWorld) -> None:
    make_staff(toy_alpha.world, role="receptionist")
    client = login(toy_alpha.world, email="staff@example.com", password=STAFF_PASSWORD)
    assert client.delete(f"/api/v1/toy/items/{ITEM_ID}/").status_code == 403
    [denied] = _events(toy_alpha.world, allowed=False)
    assert (denied.action, denied.object_type, denied.object_ids) == (
        "delete",
        "toy.item",
        [ITEM_ID],
    )
    assert toy_alpha.world.client().get("/api/v1/toy/items/").status_code == 401
    assert len(_events(toy_alpha.world, allowed=False)) == 1  # anonymous refusals are not


def test_user_management_writes_are_audited(alpha: TenantWorld) -> None:
    login(alpha).patch(f"/api/v1/users/{CLINICIAN_ID}/", {"role": "nurse"}, format="json")
    [event] = _events(alpha, object_type="accounts.user", action="update")
    assert event.object_ids == [CLINICIAN_ID]


def test_logins_and_failures_are_audited_with_the_attempted_email(alpha: TenantWorld) -> None:
    client = alpha.client()
    client.post(
        "/api/v1/auth/token/", {"email": "Nobody@Example.com", "password": "x"}, format="json"
    )
    client.post("/api/v1/auth/token/", {"email": ADMIN_EMAIL, "password": "wrong"}, format="json")
    login(alpha)
    events = _events(alpha, object_type="accounts.user")
    assert [(e.action, e.actor_email, e.actor_id is not None) for e in events] == [
        ("login_failed", "nobody@example.com", False),
        ("login_failed", ADMIN_EMAIL, False),
        ("login", ADMIN_EMAIL, True),
    ]
    assert events[0].object_ids == []
    assert len(events[1].object_ids) == 1
