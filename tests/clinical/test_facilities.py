"""Facilities: admin-only management, IANA time zones, access grants audited as
permission_change, and the facility list's query count."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import tenant_context

from apikit.policy import AccessLevel, visible_containers
from audit.models import AuditEvent
from clinical.models import Facility
from tests.clinical.conftest import F1_ID, F2_ID, P2_ID, Clinic
from tests.conftest import CLINICIAN_EMAIL, CLINICIAN_ID, login
from tests.query_budget import assert_constant_queries

URL = "/api/v1/clinical/facilities/"


def _body(**overrides: Any) -> dict[str, Any]:
    body = {"name": "East", "code": "E-1", "timezone": "Asia/Tokyo", "phone": "+81 3-1234-5678"}
    body.update(overrides)
    return body


def test_admin_creates_a_facility(clinic: Clinic) -> None:
    response = login(clinic.world).post(URL, _body(), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["timezone"] == "Asia/Tokyo"
    assert response.json()["phone"] == "+81312345678"
    assert response["ETag"] == 'W/"1"'


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"code": "N1"}, "code"),
        ({"code": "bad code!"}, "code"),
        ({"name": ""}, "name"),
        ({"phone": "123"}, "phone"),
    ],
)
def test_facility_validation(clinic: Clinic, overrides: dict[str, Any], field: str) -> None:
    response = login(clinic.world).post(URL, _body(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_clinicians_cannot_create_or_change_facilities(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    assert client.post(URL, _body(), format="json").status_code == 403
    assert client.patch(f"{URL}{F1_ID}/", {"name": "X"}, format="json").status_code == 403
    with tenant_context(clinic.world.tenant):
        assert not Facility.objects.filter(code="E-1").exists()


def test_update_timezone_validated_and_versioned(clinic: Clinic) -> None:
    client = login(clinic.world)
    bad = client.patch(f"{URL}{F1_ID}/", {"timezone": "Nowhere"}, format="json")
    assert bad.status_code == 400
    ok = client.patch(f"{URL}{F1_ID}/", {"timezone": "Europe/Lisbon", "version": 1}, format="json")
    assert ok.status_code == 200
    assert ok.json()["version"] == 2


def test_archiving_and_hard_delete_of_a_referenced_facility(clinic: Clinic) -> None:
    client = login(clinic.world)
    hard = client.delete(f"{URL}{F2_ID}/?hard=true")
    assert hard.status_code == 409
    assert hard.json()["error"]["code"] == "object_referenced"
    assert client.delete(f"{URL}{F2_ID}/").status_code == 204
    assert client.get(f"{URL}{F2_ID}/").status_code == 404


def test_grant_and_revoke_access_is_audited(clinic: Clinic) -> None:
    admin = login(clinic.world)
    clinician = login(clinic.world, email=CLINICIAN_EMAIL)
    assert clinician.get(f"/api/v1/clinical/patients/{P2_ID}/").status_code == 404
    grant = admin.post(
        f"{URL}{F2_ID}/access/", {"user": str(CLINICIAN_ID), "level": "view"}, format="json"
    )
    assert grant.status_code == 200, grant.content
    assert grant.json() == [
        {
            "user": {"id": str(CLINICIAN_ID), "full_name": "alpha clinician"},
            "email": CLINICIAN_EMAIL,
            "levels": ["view"],
        }
    ]
    assert clinician.get(f"/api/v1/clinical/patients/{P2_ID}/").status_code == 200
    revoke = admin.delete(
        f"{URL}{F2_ID}/access/", {"user": str(CLINICIAN_ID), "level": "view"}, format="json"
    )
    assert revoke.status_code == 200
    assert revoke.json() == []
    assert clinician.get(f"/api/v1/clinical/patients/{P2_ID}/").status_code == 404
    with tenant_context(clinic.world.tenant):
        events = list(AuditEvent.objects.filter(action="permission_change").order_by("occurred_at"))
    assert [event.changed_fields for event in events] == [["grant:view"], ["revoke:view"]]
    assert all(
        set(map(str, event.object_ids)) == {str(F2_ID), str(CLINICIAN_ID)} for event in events
    )


def test_access_is_tenant_admin_only_and_validated(clinic: Clinic) -> None:
    clinician = login(clinic.world, email=CLINICIAN_EMAIL)
    denied = clinician.post(
        f"{URL}{F1_ID}/access/", {"user": str(CLINICIAN_ID), "level": "manage"}, format="json"
    )
    assert denied.status_code == 403
    admin = login(clinic.world)
    unknown = admin.post(
        f"{URL}{F2_ID}/access/",
        {"user": "01900000-0000-7000-8000-00000000ffff", "level": "view"},
        format="json",
    )
    assert unknown.status_code == 400
    assert "user" in unknown.json()["error"]["fields"]
    bad_level = admin.post(
        f"{URL}{F2_ID}/access/", {"user": str(CLINICIAN_ID), "level": "own"}, format="json"
    )
    assert bad_level.status_code == 400
    with tenant_context(clinic.world.tenant):
        assert not AuditEvent.objects.filter(action="permission_change").exists()
        from accounts.models import User

        user = User.objects.get(pk=CLINICIAN_ID)
        assert list(
            visible_containers(user=user, container_model=Facility, level=AccessLevel.VIEW)
        ) == [clinic.f1]


def test_list_query_count_is_constant(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    counter = iter(range(1000))

    def add_rows(n: int) -> None:
        from apikit.policy import container_access_grant

        with tenant_context(clinic.world.tenant):
            from accounts.models import User

            user = User.objects.get(pk=CLINICIAN_ID)
            for _ in range(n):
                i = next(counter)
                facility = Facility.objects.create(name=f"F{i}", code=f"Q{i}", timezone="UTC")
                container_access_grant(user=user, container=facility, level=AccessLevel.VIEW)

    with tenant_context(clinic.world.tenant):
        Facility.objects.filter(pk=F1_ID).update(archived_at="2020-01-01T00:00:00Z")
    assert_constant_queries(
        fetch=lambda: client.get(URL, {"page_size": 100}),
        add_rows=add_rows,
        expected_rows=lambda r: len(r.json()["results"]),
    )
