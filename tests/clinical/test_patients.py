"""Patients: list / detail shapes, filters, ranked search, constant query counts, validation,
mass assignment, optimistic locking, ETags, idempotent POSTs, deletion and read audit."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from apikit.policy import AccessLevel, container_access_grant
from audit.models import AuditEvent
from clinical import services
from clinical.models import Facility, Patient
from tests.clinical.conftest import (
    P1_ID,
    P2_ID,
    Clinic,
    make_appointment,
    make_patient,
)
from tests.conftest import CLINICIAN_EMAIL, login
from tests.query_budget import assert_constant_queries

URL = "/api/v1/clinical/patients/"


def _create_body(clinic: Clinic, **overrides: Any) -> dict[str, Any]:
    body = {
        "facility": str(clinic.f1.pk),
        "mrn": "MRN-100",
        "given_name": "Mary",
        "family_name": "Seacole",
        "birth_date": "1975-11-23",
        "sex": "female",
        "phone": "+49 151 23456789",
        "sms_opt_in": True,
        "assigned_clinician": str(clinic.clinician.pk),
    }
    body.update(overrides)
    return body


def test_list_rows_are_slim_with_facility_and_clinician(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        Patient.objects.filter(pk=P1_ID).update(assigned_clinician=clinic.clinician)
    response = login(clinic.world).get(URL)
    assert response.status_code == 200, response.content
    rows = {row["id"]: row for row in response.json()["results"]}
    assert set(rows) == {str(P1_ID), str(P2_ID)}
    row = rows[str(P1_ID)]
    assert row["facility"] == {"id": str(clinic.f1.pk), "code": "N1", "name": "North"}
    assert row["assigned_clinician"] == {
        "id": str(clinic.clinician.pk),
        "full_name": clinic.clinician.full_name,
    }
    assert "upcoming_appointments" not in row
    assert row["updated_at"].endswith("Z")


def test_detail_nests_facility_clinician_and_upcoming_appointments(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        past = timezone.now() - timedelta(days=3)
        make_appointment(patient=clinic.p1, clinician=clinic.clinician, start=past)
    response = login(clinic.world).get(f"{URL}{P1_ID}/")
    assert response.status_code == 200
    body = response.json()
    assert body["facility"]["timezone"] == "Europe/Berlin"
    assert [a["id"] for a in body["upcoming_appointments"]] == [str(clinic.a1.pk)]
    assert body["upcoming_appointments"][0]["starts_at_local"] == "2031-03-03T10:00:00+01:00"
    assert body["appointment_count"] == 2
    assert body["active_prescription_count"] == 1
    assert body["document_count"] == 0
    assert response["ETag"] == 'W/"1"'


def _empty_facility(clinic: Clinic) -> Facility:
    with tenant_context(clinic.world.tenant):
        facility = Facility.objects.create(name="Empty", code="E1", timezone="Europe/Paris")
        container_access_grant(user=clinic.clinician, container=facility, level=AccessLevel.VIEW)
        return facility


def test_list_query_count_is_constant(clinic: Clinic) -> None:
    client = login(clinic.world)
    counter = iter(range(10_000))
    facility = _empty_facility(clinic)

    def add_rows(n: int) -> None:
        with tenant_context(clinic.world.tenant):
            for _ in range(n):
                i = next(counter)
                make_patient(
                    facility=facility,
                    mrn=f"Q-{i}",
                    assigned_clinician=clinic.clinician,
                )

    def fetch() -> Any:
        return client.get(URL, {"facility": str(facility.pk), "page_size": "100"})

    assert_constant_queries(
        fetch=fetch, add_rows=add_rows, expected_rows=lambda r: len(r.json()["results"])
    )


def test_search_query_count_is_constant(clinic: Clinic) -> None:
    client = login(clinic.world)
    counter = iter(range(10_000))

    def add_rows(n: int) -> None:
        with tenant_context(clinic.world.tenant):
            for _ in range(n):
                make_patient(facility=clinic.f1, mrn=f"S-{next(counter)}", family="Zebra")

    assert_constant_queries(
        fetch=lambda: client.get(URL, {"search": "zebra", "page_size": "100"}),
        add_rows=add_rows,
        expected_rows=lambda r: len(r.json()["results"]),
    )


def test_clinician_list_query_count_is_constant(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    counter = iter(range(10_000))
    facility = _empty_facility(clinic)

    def add_rows(n: int) -> None:
        with tenant_context(clinic.world.tenant):
            for _ in range(n):
                make_patient(facility=facility, mrn=f"C-{next(counter)}")

    assert_constant_queries(
        fetch=lambda: client.get(URL, {"page_size": "100", "facility": str(facility.pk)}),
        add_rows=add_rows,
        expected_rows=lambda r: len(r.json()["results"]),
    )


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"sex": "male"}, {"M-1"}),
        ({"born_after": "1990-01-01"}, {"M-1"}),
        ({"born_before": "1990-01-01"}, {"MRN-1", "MRN-2"}),
        ({"facility": "01900000-0000-7000-8000-0000000c0002"}, {"MRN-2", "M-1"}),
        ({"sms_opt_in": "true"}, {"M-1"}),
    ],
)
def test_filters(clinic: Clinic, params: dict[str, Any], expected: set[str]) -> None:
    with tenant_context(clinic.world.tenant):
        make_patient(
            facility=clinic.f2,
            mrn="M-1",
            sex="male",
            birth_date=date(1995, 1, 1),
            sms_opt_in=True,
            phone="+14155550123",
        )
    response = login(clinic.world).get(URL, params)
    assert response.status_code == 200, response.content
    assert {row["mrn"] for row in response.json()["results"]} == expected


def test_filter_by_assigned_clinician_and_updated_since(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        Patient.objects.filter(pk=P2_ID).update(assigned_clinician=clinic.clinician)
    client = login(clinic.world)
    response = client.get(URL, {"assigned_clinician": str(clinic.clinician.pk)})
    assert [row["mrn"] for row in response.json()["results"]] == ["MRN-2"]
    future = (timezone.now() + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert client.get(URL, {"updated_since": future}).json()["results"] == []


@pytest.mark.parametrize(
    "params",
    [
        {"born_after": "yesterday"},
        {"sex": "robot"},
        {"facility": "not-a-uuid"},
        {"updated_since": "soon"},
        {"ordering": "search_vector"},
        {"ordering": "password"},
        {"search": "ada", "page": "0"},
    ],
)
def test_invalid_filters_are_400(clinic: Clinic, params: dict[str, Any]) -> None:
    response = login(clinic.world).get(URL, params)
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"


def test_ordering_allowlist(clinic: Clinic) -> None:
    response = login(clinic.world).get(URL, {"ordering": "family_name"})
    assert [row["family_name"] for row in response.json()["results"]] == ["Hopper", "Lovelace"]


def test_search_ranks_exact_then_prefix_then_contains_then_full_text(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        make_patient(facility=clinic.f1, mrn="X-4", given="Anna", family="Oberhauser")  # contains
        make_patient(facility=clinic.f1, mrn="X-3", given="Anna", family="Hausmann")  # prefix
        make_patient(facility=clinic.f1, mrn="HAUS", given="Bo", family="Berg")  # exact MRN
        make_patient(facility=clinic.f2, mrn="X-5", given="Zed", family="Other")  # no match
    response = login(clinic.world).get(URL, {"search": "haus"})
    assert response.status_code == 200, response.content
    assert [row["mrn"] for row in response.json()["results"]] == ["HAUS", "X-3", "X-4"]


def test_search_by_phone_in_any_format_ranks_first(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        make_patient(facility=clinic.f1, mrn="PH-1", given="Phil", phone="+4915123456789")
        make_patient(facility=clinic.f1, mrn="4915123456789", given="Decoy")
    response = login(clinic.world).get(URL, {"search": "+49 151 2345 6789"})
    mrns = [row["mrn"] for row in response.json()["results"]]
    assert mrns[0] == "PH-1"


def test_search_full_text_matches_words_in_any_order(clinic: Clinic) -> None:
    response = login(clinic.world).get(URL, {"search": "lovelace ada"})
    assert [row["mrn"] for row in response.json()["results"]] == ["MRN-1"]


def test_search_pages_by_position(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        for i in range(5):
            make_patient(facility=clinic.f1, mrn=f"PG-{i}", family=f"Page{i}")
    client = login(clinic.world)
    first = client.get(URL, {"search": "page", "page_size": "3"}).json()
    assert [row["mrn"] for row in first["results"]] == ["PG-0", "PG-1", "PG-2"]
    assert first["previous"] is None
    second = client.get(first["next"]).json()
    assert [row["mrn"] for row in second["results"]] == ["PG-3", "PG-4"]
    assert second["next"] is None


def test_create_normalises_phone_and_ignores_mass_assignment(clinic: Clinic) -> None:
    body = _create_body(
        clinic,
        created_by="01900000-0000-7000-8000-000000000999",
        version=42,
        visit_count=99,
        archived_at="2020-01-01T00:00:00Z",
        id="01900000-0000-7000-8000-0000000dffff",
    )
    response = login(clinic.world).post(URL, body, format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["phone"] == "+4915123456789"
    assert data["version"] == 1
    assert data["visit_count"] == 0
    assert data["id"] != body["id"]
    with tenant_context(clinic.world.tenant):
        patient = Patient.all_objects.get(pk=data["id"])
        assert patient.archived_at is None
        assert patient.created_by is not None
        assert patient.created_by.email == "admin@example.com"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"mrn": ""}, "mrn"),
        ({"mrn": "has space"}, "mrn"),
        ({"mrn": "MRN-1"}, "mrn"),
        ({"given_name": ""}, "given_name"),
        ({"family_name": "x" * 101}, "family_name"),
        ({"birth_date": "1990-02-30"}, "birth_date"),
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"sex": "robot"}, "sex"),
        ({"phone": "12345"}, "phone"),
        ({"phone": "+49 000"}, "phone"),
        ({"phone": "", "sms_opt_in": True}, "sms_opt_in"),
        ({"facility": "01900000-0000-7000-8000-00000000ffff"}, "facility"),
        ({"facility": "nope"}, "facility"),
        ({"assigned_clinician": "01900000-0000-7000-8000-00000000ffff"}, "assigned_clinician"),
    ],
)
def test_create_validation(clinic: Clinic, overrides: dict[str, Any], field: str) -> None:
    response = login(clinic.world).post(URL, _create_body(clinic, **overrides), format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"]
    with tenant_context(clinic.world.tenant):
        assert not Patient.objects.filter(mrn="MRN-100").exists()


def test_assigned_clinician_must_be_a_clinician(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        from accounts.models import User

        admin = User.objects.get(email="admin@example.com")
    response = login(clinic.world).post(
        URL, _create_body(clinic, assigned_clinician=str(admin.pk)), format="json"
    )
    assert response.status_code == 400
    assert "assigned_clinician" in response.json()["error"]["fields"]


def test_patch_with_stale_if_match_is_412_and_body_version_409(clinic: Clinic) -> None:
    client = login(clinic.world)
    url = f"{URL}{P1_ID}/"
    stale = client.patch(url, {"given_name": "X"}, format="json", HTTP_IF_MATCH='W/"7"')
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "precondition_failed"
    conflict = client.patch(url, {"given_name": "X", "version": 7}, format="json")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "version_conflict"
    ok = client.patch(url, {"given_name": "Augusta", "version": 1}, format="json")
    assert ok.status_code == 200, ok.content
    assert ok.json()["given_name"] == "Augusta"
    assert ok.json()["version"] == 2
    assert ok["ETag"] == 'W/"2"'
    assert client.get(url, HTTP_IF_NONE_MATCH='W/"2"').status_code == 304


def test_patch_ignores_visit_count_and_archived_at(clinic: Clinic) -> None:
    response = login(clinic.world).patch(
        f"{URL}{P1_ID}/",
        {"visit_count": 50, "archived_at": "2020-01-01T00:00:00Z", "family_name": "King"},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["visit_count"] == 0
    with tenant_context(clinic.world.tenant):
        assert Patient.objects.get(pk=P1_ID).family_name == "King"


def test_put_requires_every_field(clinic: Clinic) -> None:
    client = login(clinic.world)
    partial = client.put(f"{URL}{P1_ID}/", {"given_name": "X"}, format="json")
    assert partial.status_code == 400
    full = client.put(f"{URL}{P1_ID}/", _create_body(clinic, mrn="MRN-1"), format="json")
    assert full.status_code == 200, full.content
    assert full.json()["given_name"] == "Mary"


def test_patch_to_a_taken_mrn_is_400(clinic: Clinic) -> None:
    response = login(clinic.world).patch(f"{URL}{P1_ID}/", {"mrn": "MRN-2"}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"mrn": [services.MRN_TAKEN]}


def test_post_with_idempotency_key_replays(clinic: Clinic) -> None:
    client = login(clinic.world)
    first = client.post(URL, _create_body(clinic), format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    again = client.post(URL, _create_body(clinic), format="json", HTTP_IDEMPOTENCY_KEY="p-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    with tenant_context(clinic.world.tenant):
        assert Patient.objects.filter(mrn="MRN-100").count() == 1


def test_delete_archives(clinic: Clinic) -> None:
    client = login(clinic.world)
    with tenant_context(clinic.world.tenant):
        patient = make_patient(facility=clinic.f1, mrn="DEL-1")
    assert client.delete(f"{URL}{patient.pk}/").status_code == 204
    assert client.get(f"{URL}{patient.pk}/").status_code == 404
    with tenant_context(clinic.world.tenant):
        assert Patient.all_objects.get(pk=patient.pk).archived_at is not None


def test_hard_delete_is_admin_only_and_409_when_referenced(clinic: Clinic) -> None:
    clinician = login(clinic.world, email=CLINICIAN_EMAIL)
    denied = clinician.delete(f"{URL}{P1_ID}/?hard=true")
    assert denied.status_code == 403
    admin = login(clinic.world)
    referenced = admin.delete(f"{URL}{P1_ID}/?hard=true")
    assert referenced.status_code == 409
    error = referenced.json()["error"]
    assert error["code"] == "object_referenced"
    assert "2 other record(s)" in error["detail"]
    assert "clinical.appointment: 1" in error["detail"]
    with tenant_context(clinic.world.tenant):
        lonely = make_patient(facility=clinic.f1, mrn="LONELY")
    assert admin.delete(f"{URL}{lonely.pk}/?hard=true").status_code == 204
    with tenant_context(clinic.world.tenant):
        assert not Patient.all_objects.filter(pk=lonely.pk).exists()
        assert Patient.all_objects.filter(pk=P1_ID).exists()


def test_reads_are_audited_with_the_ids_returned(clinic: Clinic) -> None:
    client = login(clinic.world)
    client.get(URL)
    client.get(f"{URL}{P1_ID}/")
    with tenant_context(clinic.world.tenant):
        reads = list(
            AuditEvent.objects.filter(action="read", object_type="clinical.patient").order_by(
                "occurred_at"
            )
        )
    assert [sorted(map(str, event.object_ids)) for event in reads] == [
        sorted([str(P1_ID), str(P2_ID)]),
        [str(P1_ID)],
    ]


def test_receptionist_cannot_delete(clinic: Clinic) -> None:
    from apikit.policy import AccessLevel, container_access_grant
    from tests.clinical.conftest import STAFF_PASSWORD, make_user

    with tenant_context(clinic.world.tenant):
        desk = make_user(email="desk@example.com", role="receptionist")
        container_access_grant(user=desk, container=clinic.f1, level=AccessLevel.MANAGE)
    client = login(clinic.world, email="desk@example.com", password=STAFF_PASSWORD)
    assert client.get(f"{URL}{P1_ID}/").status_code == 200
    assert client.delete(f"{URL}{P1_ID}/").status_code == 403
    with tenant_context(clinic.world.tenant):
        assert Patient.objects.filter(pk=P1_ID).exists()
