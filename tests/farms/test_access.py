"""farms/{id}/access/: tenant_admin and farm managers grant and revoke view / manage."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from audit.models import AuditEvent
from tests.farms.conftest import AGENT_ID, F1, F2, FIELD2, FarmWorld, error, ids


def test_admin_grants_and_revokes_a_farm(farm_alpha: FarmWorld) -> None:
    admin = farm_alpha.admin_client()
    agent = farm_alpha.agent_client()
    assert ids(agent.get("/api/v1/farms/fields/")) != [str(FIELD2)]

    granted = admin.post(
        f"/api/v1/farms/{F2}/access/", {"user": str(AGENT_ID), "level": "view"}, format="json"
    )
    assert granted.status_code == 200, granted.content
    assert granted.json()["results"] == [
        {
            "user": str(AGENT_ID),
            "email": "agent@example.com",
            "role": "field_agent",
            "level": "view",
        }
    ]
    assert str(FIELD2) in ids(agent.get("/api/v1/farms/fields/"))
    with tenant_context(farm_alpha.world.tenant):
        event = AuditEvent.objects.filter(action=AuditEvent.Action.PERMISSION_CHANGE).get()
        assert set(event.object_ids) == {F2, AGENT_ID}

    assert admin.delete(f"/api/v1/farms/{F2}/access/{AGENT_ID}/").status_code == 204
    assert str(FIELD2) not in ids(agent.get("/api/v1/farms/fields/"))
    error(admin.delete(f"/api/v1/farms/{F2}/access/{F1}/"), 404)  # no such user


def test_manage_grant_lets_an_agronomist_grant_on_that_farm_only(farm_alpha: FarmWorld) -> None:
    agronomist = farm_alpha.agronomist_client()
    listed = agronomist.get(f"/api/v1/farms/{F1}/access/").json()["results"]
    assert {(row["email"], row["level"]) for row in listed} == {
        ("agent@example.com", "view"),
        ("agronomist@example.com", "manage"),
    }
    upgraded = agronomist.post(
        f"/api/v1/farms/{F1}/access/", {"user": str(AGENT_ID), "level": "manage"}, format="json"
    )
    assert upgraded.status_code == 200
    error(
        agronomist.post(
            f"/api/v1/farms/{F2}/access/", {"user": str(AGENT_ID), "level": "view"}, format="json"
        ),
        404,
    )
    # ?level=manage downgrades to view.
    assert (
        agronomist.delete(f"/api/v1/farms/{F1}/access/{AGENT_ID}/?level=manage").status_code == 204
    )
    levels = {
        row["email"]: row["level"]
        for row in agronomist.get(f"/api/v1/farms/{F1}/access/").json()["results"]
    }
    assert levels["agent@example.com"] == "view"


def test_field_agents_cannot_grant(farm_alpha: FarmWorld) -> None:
    response = farm_alpha.agent_client().post(
        f"/api/v1/farms/{F1}/access/", {"user": str(AGENT_ID), "level": "manage"}, format="json"
    )
    assert error(response, 403)["code"] == "permission_denied"


def test_bad_grants_are_400(farm_alpha: FarmWorld) -> None:
    admin = farm_alpha.admin_client()
    unknown = admin.post(
        f"/api/v1/farms/{F1}/access/", {"user": str(F1), "level": "view"}, format="json"
    )
    assert list(error(unknown, 400)["fields"]) == ["user"]
    level = admin.post(
        f"/api/v1/farms/{F1}/access/", {"user": str(AGENT_ID), "level": "own"}, format="json"
    )
    assert list(error(level, 400)["fields"]) == ["level"]
    to_admin = admin.post(
        f"/api/v1/farms/{F1}/access/",
        {"user": str(farm_alpha.admin.pk), "level": "view"},
        format="json",
    )
    assert list(error(to_admin, 400)["fields"]) == ["user"]


def test_a_creating_agronomist_manages_the_new_farm(farm_alpha: FarmWorld) -> None:
    agronomist = farm_alpha.agronomist_client()
    created = agronomist.post(
        "/api/v1/farms/",
        {
            "name": "Hillside",
            "region": "Nakuru",
            "timezone": "Africa/Nairobi",
            "location": {"type": "Point", "coordinates": [36.07, -0.31]},
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    farm_id = created.json()["id"]
    assert created.json()["location"] == {"type": "Point", "coordinates": [36.07, -0.31]}
    assert farm_id in ids(agronomist.get("/api/v1/farms/"))
    renamed = agronomist.patch(
        f"/api/v1/farms/{farm_id}/", {"name": "Hillside East"}, format="json"
    )
    assert renamed.status_code == 200
    assert renamed.json()["version"] == 2
    # Agronomists may not delete farms (the role matrix); tenant admins archive them.
    error(agronomist.delete(f"/api/v1/farms/{farm_id}/"), 403)
    assert farm_alpha.admin_client().delete(f"/api/v1/farms/{farm_id}/").status_code == 204
    assert farm_id not in ids(agronomist.get("/api/v1/farms/"))


def test_view_grant_does_not_allow_changes(farm_alpha: FarmWorld) -> None:
    from apikit.policy import AccessLevel, container_access_revoke

    with tenant_context(farm_alpha.world.tenant):
        container_access_revoke(
            user=farm_alpha.agronomist, container=farm_alpha.f1, level=AccessLevel.MANAGE
        )
    agronomist = farm_alpha.agronomist_client()
    error(agronomist.patch(f"/api/v1/farms/{F1}/", {"name": "mine"}, format="json"), 403)
    error(agronomist.get(f"/api/v1/farms/{F1}/access/"), 403)
    assert agronomist.get(f"/api/v1/farms/{F1}/").status_code == 200


def test_archived_farm_hides_everything_under_it(farm_alpha: FarmWorld) -> None:
    admin = farm_alpha.admin_client()
    assert admin.delete(f"/api/v1/farms/{F2}/").status_code == 204
    assert str(FIELD2) not in ids(admin.get("/api/v1/farms/fields/"))
    error(admin.get(f"/api/v1/farms/fields/{FIELD2}/"), 404)


def test_stale_version_is_a_conflict(farm_alpha: FarmWorld) -> None:
    admin = farm_alpha.admin_client()
    response = admin.patch(f"/api/v1/farms/{F1}/", {"name": "x", "version": 9}, format="json")
    assert error(response, 409)["code"] == "version_conflict"
    stale = admin.patch(f"/api/v1/farms/{F1}/", {"name": "x"}, format="json", HTTP_IF_MATCH='W/"7"')
    assert error(stale, 412)["code"] == "precondition_failed"
