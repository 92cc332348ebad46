"""Tenants shaped by kind (issue 19, item 6): alpha and beta (colliding users, ids and emails)
made a clinic and a farm tenant inside the test's transaction. Every entry point serves a tenant
only its kind's domains — API routes, the OpenAPI document served on its host, sync pull and push
tables, the reminder sweep — and the mixed kind keeps everything."""

from __future__ import annotations

import uuid
from typing import Any

import orjson
import pytest
from django.test import Client
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

import clinical.tasks
from accounts.models import User
from audit.public.models import PublicAuditEvent
from clinical.services import facility_create
from clinical.tasks import reminders_sweep
from farms.services import farm_create
from tenants.kinds import (
    KindChangeRefusedError,
    kind_change_blockers,
    kinds_serving,
)
from tenants.models import Tenant
from tenants.routing import get_router
from tenants.services import tenant_kind_change, tenant_provision
from tests.conftest import ADMIN_EMAIL, TenantWorld, login
from tests.tenants.operators import operator_client

CLINIC_ROUTES = ["/api/v1/clinical/facilities/", "/api/v1/clinical/patients/"]
FARM_ROUTES = ["/api/v1/farms/", "/api/v1/farms/crops/"]
CLINICAL_TABLES = {"patients", "appointments"}
FARM_TABLES = {"farms", "fields", "crops", "plantings", "observations", "harvests"}
SCHEMA_JSON = "application/vnd.oai.openapi+json"


def make_kind(world: TenantWorld, kind: str) -> TenantWorld:
    """``world``'s tenant as ``kind`` (rolled back with the test), routed afresh."""
    Tenant.objects.filter(pk=world.tenant.pk).update(kind=kind)
    get_router().forget_local()
    world.tenant.refresh_from_db()
    return world


@pytest.fixture
def clinic(alpha: TenantWorld) -> TenantWorld:
    return make_kind(alpha, Tenant.Kind.CLINIC)


@pytest.fixture
def farm(beta: TenantWorld) -> TenantWorld:
    return make_kind(beta, Tenant.Kind.FARM)


def unknown_route(client: APIClient, path: str) -> dict[str, Any]:
    response = client.get(path)
    assert response.status_code == 404, response.content
    body: dict[str, Any] = response.json()
    return body


# --- API routes ----------------------------------------------------------------------------------


def test_a_clinic_tenant_answers_its_farm_routes_like_unknown_ones(clinic: TenantWorld) -> None:
    client = login(clinic)
    for path in CLINIC_ROUTES:
        assert client.get(path).status_code == 200, path
    nowhere = unknown_route(client, "/api/v1/nowhere/")["error"]
    for path in FARM_ROUTES:
        error = unknown_route(client, path)["error"]
        assert (error["status"], error["code"]) == (nowhere["status"], nowhere["code"])
    assert client.post(FARM_ROUTES[0], {"name": "x"}, format="json").status_code == 404


def test_a_farm_tenant_answers_its_clinical_routes_like_unknown_ones(farm: TenantWorld) -> None:
    client = login(farm)
    for path in FARM_ROUTES:
        assert client.get(path).status_code == 200, path
    code = unknown_route(client, "/api/v1/nowhere/")["error"]["code"]
    for path in CLINIC_ROUTES:
        assert unknown_route(client, path)["error"]["code"] == code
    # The platform's routes stay: accounts, audit, notify, sync.
    for path in ["/api/v1/auth/me/", "/api/v1/users/", "/api/v1/audit/events/"]:
        assert client.get(path).status_code == 200, path


def test_two_kinds_side_by_side_with_colliding_users(
    clinic: TenantWorld, farm: TenantWorld
) -> None:
    """Same admin email, same clinician id in both: each host serves its own kind's routes."""
    clinic_client, farm_client = login(clinic), login(farm)
    assert clinic_client.get("/api/v1/auth/me/").json()["email"] == ADMIN_EMAIL
    assert farm_client.get("/api/v1/auth/me/").json()["email"] == ADMIN_EMAIL
    assert clinic_client.get(FARM_ROUTES[0]).status_code == 404
    assert farm_client.get(FARM_ROUTES[0]).status_code == 200
    assert clinic_client.get(CLINIC_ROUTES[0]).status_code == 200
    assert farm_client.get(CLINIC_ROUTES[0]).status_code == 404


def test_the_mixed_kind_keeps_every_route(alpha: TenantWorld) -> None:
    assert alpha.tenant.kind == Tenant.Kind.MIXED
    client = login(alpha)
    for path in CLINIC_ROUTES + FARM_ROUTES:
        assert client.get(path).status_code == 200, path


def test_the_routes_follow_a_kind_change_at_once(alpha: TenantWorld) -> None:
    client = login(alpha)
    assert client.get(FARM_ROUTES[0]).status_code == 200
    make_kind(alpha, Tenant.Kind.CLINIC)
    assert client.get(FARM_ROUTES[0]).status_code == 404


# --- the OpenAPI document served on a tenant host --------------------------------------------------


def served_paths(world: TenantWorld) -> set[str]:
    response = world.client().get("/api/v1/schema/", HTTP_ACCEPT=SCHEMA_JSON)
    assert response.status_code == 200, response.content[:300]
    return set(orjson.loads(response.content)["paths"])


def test_the_openapi_document_lists_what_the_tenant_has(
    clinic: TenantWorld, farm: TenantWorld
) -> None:
    on_clinic, on_farm = served_paths(clinic), served_paths(farm)
    assert any(path.startswith("/api/v1/clinical/") for path in on_clinic)
    assert not any(path.startswith("/api/v1/farms/") for path in on_clinic)
    assert any(path.startswith("/api/v1/farms/") for path in on_farm)
    assert not any(path.startswith("/api/v1/clinical/") for path in on_farm)
    for shared in ("/api/v1/auth/token/", "/api/v1/sync/pull/", "/api/v1/users/"):
        assert shared in on_clinic
        assert shared in on_farm


def test_the_mixed_kind_serves_the_full_document(alpha: TenantWorld) -> None:
    paths = served_paths(alpha)
    assert any(path.startswith("/api/v1/clinical/") for path in paths)
    assert any(path.startswith("/api/v1/farms/") for path in paths)


# --- sync -----------------------------------------------------------------------------------------


def pull(client: APIClient, **params: str) -> Any:
    return client.get("/api/v1/sync/pull/", params)


def push(client: APIClient, changes: dict[str, Any]) -> Any:
    return client.post(
        "/api/v1/sync/push/",
        data=orjson.dumps({"changes": changes}),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )


def test_a_pull_sends_only_the_kinds_tables(clinic: TenantWorld, farm: TenantWorld) -> None:
    clinic_pull = pull(login(clinic))
    farm_pull = pull(login(farm))
    assert clinic_pull.status_code == 200, clinic_pull.content
    assert set(clinic_pull.json()["changes"]) == CLINICAL_TABLES
    assert set(farm_pull.json()["changes"]) == FARM_TABLES


def test_a_device_registers_with_the_kinds_tables(clinic: TenantWorld, farm: TenantWorld) -> None:
    for world, tables in ((clinic, CLINICAL_TABLES), (farm, FARM_TABLES)):
        response = login(world).post(
            "/api/v1/sync/devices/", {"name": "phone", "platform": "android"}, format="json"
        )
        assert response.status_code == 201, response.content
        assert set(response.json()["scope"]["tables"]) == tables


@pytest.mark.parametrize(
    ("world_name", "table"), [("farm", "patients"), ("clinic", "observations")]
)
def test_pulling_a_table_outside_the_kind_is_a_400(
    world_name: str, table: str, request: pytest.FixtureRequest
) -> None:
    world = request.getfixturevalue(world_name)
    response = pull(login(world), tables=table)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "table_not_served"
    assert table in error["detail"]
    assert world.tenant.kind in error["detail"]


def test_pushing_rows_of_a_table_outside_the_kind_is_a_400_and_writes_nothing(
    farm: TenantWorld,
) -> None:
    row = {"id": str(uuid.uuid4()), "fields": {"given_name": "Ada"}}
    response = push(login(farm), {"patients": [row]})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "table_not_served"
    assert "patients" in error["detail"]
    with tenant_context(farm.tenant):
        from clinical.models import Patient

        assert not Patient.objects.filter(pk=row["id"]).exists()


def test_an_empty_table_outside_the_kind_is_no_error(clinic: TenantWorld) -> None:
    """WatermelonDB sends every table of the app's local schema, empty ones too."""
    response = push(login(clinic), {"observations": [], "patients": []})
    assert response.status_code == 200, response.content
    assert response.json()["results"] == []


def test_the_mixed_kind_pulls_every_table(alpha: TenantWorld) -> None:
    assert set(pull(login(alpha)).json()["changes"]) == CLINICAL_TABLES | FARM_TABLES


# --- the reminder sweep ----------------------------------------------------------------------------


def test_the_reminder_sweep_skips_farm_tenants(
    clinic: TenantWorld, farm: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def due(*, schemas: list[str]) -> list[str]:
        asked.extend(schemas)
        return []

    monkeypatch.setattr(clinical.tasks, "schemas_with_due_reminders", due)
    reminders_sweep()
    assert clinic.tenant.schema_name in asked
    assert farm.tenant.schema_name not in asked
    assert kinds_serving("clinical") == [Tenant.Kind.CLINIC, Tenant.Kind.MIXED]


def test_the_reminder_sweep_keeps_mixed_tenants(
    alpha: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def due(*, schemas: list[str]) -> list[str]:
        asked.extend(schemas)
        return []

    monkeypatch.setattr(clinical.tasks, "schemas_with_due_reminders", due)
    reminders_sweep()
    assert alpha.tenant.schema_name in asked


# --- changing the kind ----------------------------------------------------------------------------

OPERATOR_EMAIL = "kinds-ops@verdant.example"
OPERATOR_PASSWORD = "kinds-ops-Password-77"


@pytest.fixture
def operator(db: None) -> Client:
    return operator_client(email=OPERATOR_EMAIL, password=OPERATOR_PASSWORD)


@pytest.fixture
def empty(db: None) -> Tenant:
    """A freshly provisioned mixed tenant: no domain data at all."""
    return tenant_provision(
        slug="kindless", name="Kindless", kind=Tenant.Kind.MIXED, admin_email=ADMIN_EMAIL
    ).tenant


def _facility(world: TenantWorld) -> None:
    with tenant_context(world.tenant):
        actor = User.objects.get(email=ADMIN_EMAIL)
        facility_create(name="North", code="N1", timezone="UTC", address="", phone="", actor=actor)


def _change_form(tenant: Tenant, kind: str) -> dict[str, Any]:
    return {"name": tenant.name, "kind": kind, "plan": tenant.plan_id, "status": tenant.status}


def test_the_operator_is_refused_a_kind_that_would_lose_data_and_told_what_exists(
    operator: Client, alpha: TenantWorld, beta: TenantWorld
) -> None:
    _facility(alpha)
    _facility(beta)  # the same facility in beta: what alpha has is counted in alpha only
    response = operator.post(
        f"/admin/tenants/tenant/{alpha.tenant.pk}/change/", _change_form(alpha.tenant, "farm")
    )
    assert response.status_code == 200  # the form again, with the error
    content = response.content.decode()
    assert "alpha cannot become Agricultural operator" in content
    assert "clinical.Facility: 1" in content
    alpha.tenant.refresh_from_db()
    assert alpha.tenant.kind == Tenant.Kind.MIXED
    assert login(alpha).get(FARM_ROUTES[0]).status_code == 200
    assert not PublicAuditEvent.objects.filter(
        object_type="tenants.tenant", actor_email=OPERATOR_EMAIL
    ).exists()


def test_the_operator_changes_the_kind_when_no_data_would_be_lost(
    operator: Client,
    empty: Tenant,
    django_capture_on_commit_callbacks: pytest.FixtureRequest,
) -> None:
    world = TenantWorld(tenant=empty, host="kindless.verdant.test", password="")
    # Cached as mixed first: the clinical route exists (401 without a token).
    assert world.client().get(CLINIC_ROUTES[0]).status_code == 401
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = operator.post(
            f"/admin/tenants/tenant/{empty.pk}/change/", _change_form(empty, "farm")
        )
    assert response.status_code == 302, response.content[:3000]
    empty.refresh_from_db()
    assert empty.kind == Tenant.Kind.FARM
    # Committed suites (tests/browser) leave operator events of their own: only ours count.
    event = PublicAuditEvent.objects.get(object_type="tenants.tenant", actor_email=OPERATOR_EMAIL)
    assert (event.action, event.actor_email) == ("update", OPERATOR_EMAIL)
    assert "kind" in event.changed_fields
    # The change republished routing (on commit): the host serves the new kind at once.
    gone = world.client().get(CLINIC_ROUTES[0])
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "not_found"


def test_the_kind_change_service_lists_what_exists_per_domain(empty: Tenant) -> None:
    with tenant_context(empty):
        actor = User.objects.get(email=ADMIN_EMAIL)
        farm_create(name="Home", actor=actor)
    with pytest.raises(KindChangeRefusedError) as refused:
        tenant_kind_change(slug=empty.slug, kind=Tenant.Kind.CLINIC)
    assert "farms.Farm: 1" in str(refused.value)
    assert [str(item) for item in refused.value.found] == ["farms.Farm: 1"]
    # Keeping the domain is always allowed: mixed -> farm loses clinical only (none there).
    assert tenant_kind_change(slug=empty.slug, kind=Tenant.Kind.FARM).kind == Tenant.Kind.FARM
    assert kind_change_blockers(tenant=empty, kind=Tenant.Kind.MIXED) == []
    assert tenant_kind_change(slug=empty.slug, kind=Tenant.Kind.MIXED).kind == Tenant.Kind.MIXED


def test_an_unknown_kind_is_refused(empty: Tenant) -> None:
    with pytest.raises(ValueError, match="unknown tenant kind"):
        tenant_kind_change(slug=empty.slug, kind="aquarium")
