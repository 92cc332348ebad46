"""Devices: registration, the ``did`` claim, listing, and revocation answering 403
``device_revoked`` on every endpoint (including token refresh), with no per-request query."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import ADMIN_EMAIL, TenantWorld
from tests.farms.conftest import AGENT_EMAIL, STAFF_PASSWORD
from tests.sync.conftest import SyncWorld, device_login, error, login, pull


def _register(client: Any, name: str = "Field phone") -> dict[str, Any]:
    response = client.post(
        "/api/v1/sync/devices/", {"name": name, "platform": "android"}, format="json"
    )
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def test_register_returns_id_scope_and_schema_versions(sync_alpha: SyncWorld) -> None:
    agent = login(sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD)
    device = _register(agent)
    assert uuid.UUID(device["id"])
    assert device["platform"] == "android"
    assert device["scope"]["all"] is False
    assert device["scope"]["container_ids"] == [str(sync_alpha.farms.f1.pk)]
    assert "patients" not in device["scope"]["tables"]
    assert device["schema_versions"] == [1]


def test_bad_registration_is_400(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    response = client.post(
        "/api/v1/sync/devices/", {"name": "", "platform": "nokia"}, format="json"
    )
    body = error(response, 400)
    assert set(body["fields"]) == {"name", "platform"}


def test_token_with_device_carries_did_and_syncs(sync_alpha: SyncWorld) -> None:
    agent = login(sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD)
    device = _register(agent)
    client = device_login(
        sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD, device=device["id"]
    )
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken(client._credentials["HTTP_AUTHORIZATION"].split()[1])  # type: ignore[attr-defined]
    assert token["did"] == device["id"]
    assert pull(client, tables="farms")["changes"]["farms"]["upserted"]
    listed = agent.get("/api/v1/sync/devices/").json()["results"]
    assert listed[0]["last_seen_at"] is not None


def test_a_device_of_another_user_or_unknown_cannot_be_named(sync_alpha: SyncWorld) -> None:
    admin_device = _register(login(sync_alpha.world))
    for device in (admin_device["id"], str(uuid.uuid4()), "not-a-uuid"):
        response = sync_alpha.world.client().post(
            "/api/v1/auth/token/",
            {"email": AGENT_EMAIL, "password": STAFF_PASSWORD, "device": device},
            format="json",
        )
        assert response.status_code == 400, response.content


def test_users_see_their_own_devices_and_admins_all(sync_alpha: SyncWorld) -> None:
    agent = login(sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD)
    admin = login(sync_alpha.world)
    mine = _register(agent, "agent phone")
    theirs = _register(admin, "admin tablet")
    assert [d["id"] for d in agent.get("/api/v1/sync/devices/").json()["results"]] == [mine["id"]]
    assert {d["id"] for d in admin.get("/api/v1/sync/devices/").json()["results"]} == {
        mine["id"],
        theirs["id"],
    }
    assert agent.get(f"/api/v1/sync/devices/{theirs['id']}/").status_code == 404


def test_revoked_device_gets_403_on_every_endpoint(sync_alpha: SyncWorld) -> None:
    agent = login(sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD)
    device = _register(agent)
    phone = device_login(
        sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD, device=device["id"]
    )
    assert phone.get("/api/v1/auth/me/").status_code == 200
    # Only tenant_admin revokes.
    assert agent.post(f"/api/v1/sync/devices/{device['id']}/revoke/").status_code == 403
    admin = login(sync_alpha.world)
    revoked = admin.post(f"/api/v1/sync/devices/{device['id']}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["is_revoked"] is True
    for path in (
        "/api/v1/auth/me/",
        "/api/v1/sync/pull/",
        "/api/v1/farms/fields/",
        "/api/v1/sync/devices/",
    ):
        assert error(phone.get(path), 403)["code"] == "device_revoked", path
    assert error(phone.post("/api/v1/sync/push/", {}, format="json"), 403)["code"] == (
        "device_revoked"
    )
    refresh = sync_alpha.world.client().post(
        "/api/v1/auth/token/refresh/",
        {"refresh": phone.refresh_token},  # type: ignore[attr-defined]
        format="json",
    )
    assert error(refresh, 403)["code"] == "device_revoked"
    relogin = sync_alpha.world.client().post(
        "/api/v1/auth/token/",
        {"email": AGENT_EMAIL, "password": STAFF_PASSWORD, "device": device["id"]},
        format="json",
    )
    assert error(relogin, 403)["code"] == "device_revoked"
    # The same user's token without a device, and other devices, keep working.
    assert agent.get("/api/v1/auth/me/").status_code == 200


def test_device_check_costs_no_query_on_a_warm_process(sync_alpha: SyncWorld) -> None:
    agent = login(sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD)
    device = _register(agent)
    phone = device_login(
        sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD, device=device["id"]
    )
    plain = login(sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD)
    phone.get("/api/v1/auth/me/")
    plain.get("/api/v1/auth/me/")
    with CaptureQueriesContext(connection) as with_device:
        assert phone.get("/api/v1/auth/me/").status_code == 200
    with CaptureQueriesContext(connection) as without_device:
        assert plain.get("/api/v1/auth/me/").status_code == 200
    assert len(with_device.captured_queries) == len(without_device.captured_queries)


def test_device_ids_collide_across_tenants_without_leaking(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from sync.models import Device

    shared = uuid.UUID("01900000-0000-7000-8000-00000000d111")
    for world in (alpha, beta):
        with tenant_context(world.tenant):
            Device.objects.create(
                id=shared,
                user=User.objects.get(email=ADMIN_EMAIL),
                name=world.tenant.slug,
                platform="ios",
            )
    alpha_phone = device_login(
        alpha, email=ADMIN_EMAIL, password=alpha.password, device=str(shared)
    )
    beta_phone = device_login(beta, email=ADMIN_EMAIL, password=beta.password, device=str(shared))
    login(alpha).post(f"/api/v1/sync/devices/{shared}/revoke/")
    assert error(alpha_phone.get("/api/v1/auth/me/"), 403)["code"] == "device_revoked"
    assert beta_phone.get("/api/v1/auth/me/").status_code == 200
    with tenant_context(beta.tenant):
        assert Device.objects.get(pk=shared).revoked_at is None
