"""Appointments: no double booking (constraint, sequential and concurrent), back-to-back slots,
facility time zones, the status machine, visit counts, summary and query counts."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from clinical.models import Appointment, Facility, Patient
from tenants.services import tenant_drop, tenant_host, tenant_provision
from tests.clinical.conftest import (
    A1_ID,
    A2_ID,
    BASE_TIME,
    P1_ID,
    Clinic,
    make_appointment,
    make_patient,
    make_user,
)
from tests.conftest import CLINICIAN_EMAIL, CLINICIAN_ID, login
from tests.query_budget import assert_constant_queries

URL = "/api/v1/clinical/appointments/"


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _book(client: APIClient, start: datetime, minutes: int = 30, **extra: Any) -> Any:
    body = {
        "patient": str(P1_ID),
        "clinician": str(CLINICIAN_ID),
        "starts_at": _iso(start),
        "ends_at": _iso(start + timedelta(minutes=minutes)),
        "reason": "check-up",
    }
    body.update(extra)
    return client.post(URL, body, format="json")


def test_create_shows_utc_and_facility_local_times(clinic: Clinic) -> None:
    start = BASE_TIME + timedelta(days=1)
    response = _book(login(clinic.world), start)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["starts_at"] == "2031-03-04T09:00:00.000000Z"
    assert body["starts_at_local"] == "2031-03-04T10:00:00+01:00"
    assert body["timezone"] == "Europe/Berlin"
    assert body["status"] == "scheduled"
    assert body["facility"]["id"] == str(clinic.f1.pk)


def test_times_without_offset_are_facility_wall_clock(clinic: Clinic) -> None:
    response = _book(
        login(clinic.world),
        BASE_TIME,
        starts_at="2031-03-05T10:00:00",
        ends_at="2031-03-05T10:30:00",
    )
    assert response.status_code == 201, response.content
    assert response.json()["starts_at"] == "2031-03-05T09:00:00.000000Z"


@pytest.mark.parametrize(
    ("starts_at", "message"),
    [
        ("2031-03-30T02:30:00", "does not exist in Europe/Berlin"),
        ("2031-10-26T02:30:00", "happens twice in Europe/Berlin"),
        ("tomorrow", "ISO 8601"),
    ],
)
def test_local_times_the_clock_skips_or_repeats_are_400(
    clinic: Clinic, starts_at: str, message: str
) -> None:
    response = _book(
        login(clinic.world), BASE_TIME, starts_at=starts_at, ends_at="2031-12-01T10:00:00Z"
    )
    assert response.status_code == 400
    assert message in response.json()["error"]["fields"]["starts_at"][0]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"ends_at": "2031-03-10T09:00:00Z", "starts_at": "2031-03-10T09:00:00Z"}, "ends_at"),
        ({"ends_at": "2031-03-10T08:00:00Z", "starts_at": "2031-03-10T09:00:00Z"}, "ends_at"),
        ({"ends_at": "2031-03-11T09:00:00Z", "starts_at": "2031-03-10T09:00:00Z"}, "ends_at"),
        ({"patient": "01900000-0000-7000-8000-00000000ffff"}, "patient"),
        ({"clinician": "01900000-0000-7000-8000-00000000ffff"}, "clinician"),
        ({"reason": "x" * 501}, "reason"),
        ({"starts_at": None}, "starts_at"),
    ],
)
def test_create_validation(clinic: Clinic, overrides: dict[str, Any], field: str) -> None:
    response = _book(login(clinic.world), BASE_TIME + timedelta(days=9), **overrides)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    with tenant_context(clinic.world.tenant):
        assert Appointment.objects.count() == 2


def test_the_clinician_must_have_the_clinician_role(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        nurse = make_user(email="n@example.com", role=Role.NURSE)
    response = _book(login(clinic.world), BASE_TIME + timedelta(days=3), clinician=str(nurse.pk))
    assert response.status_code == 400
    assert "clinician" in response.json()["error"]["fields"]


def test_mass_assignment_is_ignored(clinic: Clinic) -> None:
    response = _book(
        login(clinic.world),
        BASE_TIME + timedelta(days=2),
        status="completed",
        version=9,
        created_by=str(CLINICIAN_ID),
        archived_at="2020-01-01T00:00:00Z",
    )
    assert response.status_code == 201
    assert response.json()["status"] == "scheduled"
    assert response.json()["version"] == 1
    with tenant_context(clinic.world.tenant):
        row = Appointment.all_objects.get(pk=response.json()["id"])
        assert row.archived_at is None
        assert row.created_by is not None
        assert row.created_by.email == "admin@example.com"


def test_double_booking_is_409_and_back_to_back_is_fine(clinic: Clinic) -> None:
    client = login(clinic.world)
    overlap = _book(client, BASE_TIME + timedelta(minutes=15))
    assert overlap.status_code == 409
    assert overlap.json()["error"]["code"] == "appointment_conflict"
    assert _book(client, BASE_TIME + timedelta(minutes=30)).status_code == 201
    assert _book(client, BASE_TIME - timedelta(minutes=30)).status_code == 201
    inside = _book(client, BASE_TIME + timedelta(minutes=5), minutes=10)
    assert inside.status_code == 409


def test_another_clinician_may_take_the_same_slot(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        other = make_user(email="doc2@example.com", role=Role.CLINICIAN)
    response = _book(login(clinic.world), BASE_TIME, clinician=str(other.pk))
    assert response.status_code == 201


def test_cancelled_slots_can_be_booked_again(clinic: Clinic) -> None:
    client = login(clinic.world)
    assert client.post(f"{URL}{A1_ID}/cancel/", {"reason": "ill"}, format="json").status_code == 200
    assert _book(client, BASE_TIME).status_code == 201


def test_rescheduling_into_a_taken_slot_is_409(clinic: Clinic) -> None:
    client = login(clinic.world)
    response = client.patch(
        f"{URL}{A1_ID}/",
        {
            "starts_at": _iso(BASE_TIME + timedelta(hours=2)),
            "ends_at": _iso(BASE_TIME + timedelta(hours=2, minutes=30)),
        },
        format="json",
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "appointment_conflict"
    moved = client.patch(
        f"{URL}{A1_ID}/",
        {
            "starts_at": _iso(BASE_TIME + timedelta(hours=5)),
            "ends_at": _iso(BASE_TIME + timedelta(hours=5, minutes=30)),
        },
        format="json",
    )
    assert moved.status_code == 200, moved.content
    assert moved.json()["version"] == 2


def test_the_database_refuses_overlaps_written_around_the_api(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        with pytest.raises(IntegrityError), transaction.atomic():
            make_appointment(
                patient=clinic.p1,
                clinician=clinic.clinician,
                start=BASE_TIME + timedelta(minutes=1),
            )
        with pytest.raises(IntegrityError), transaction.atomic():
            Appointment.objects.create(
                patient=clinic.p1,
                clinician=clinic.clinician,
                facility=clinic.f1,
                starts_at=BASE_TIME + timedelta(days=5),
                ends_at=BASE_TIME + timedelta(days=5),
            )


def test_status_machine(clinic: Clinic) -> None:
    client = login(clinic.world)
    complete_early = client.post(f"{URL}{A1_ID}/complete/")
    assert complete_early.status_code == 409
    assert complete_early.json()["error"]["code"] == "invalid_transition"
    checked_in = client.post(f"{URL}{A1_ID}/check-in/")
    assert checked_in.status_code == 200, checked_in.content
    assert checked_in.json()["status"] == "checked_in"
    assert client.post(f"{URL}{A1_ID}/check-in/").status_code == 409
    assert client.post(f"{URL}{A1_ID}/cancel/").status_code == 409
    completed = client.post(f"{URL}{A1_ID}/complete/")
    assert completed.status_code == 200
    assert completed.json()["completed_at"] is not None
    moved = client.patch(f"{URL}{A1_ID}/", {"starts_at": _iso(BASE_TIME)}, format="json")
    assert moved.status_code == 409
    assert moved.json()["error"]["code"] == "invalid_transition"
    assert client.post(f"{URL}{A2_ID}/no-show/").json()["status"] == "no_show"


def test_check_in_increments_visit_count(clinic: Clinic) -> None:
    client = login(clinic.world)
    with tenant_context(clinic.world.tenant):
        later = make_appointment(
            patient=clinic.p1, clinician=clinic.clinician, start=BASE_TIME + timedelta(days=1)
        )
    client.post(f"{URL}{A1_ID}/check-in/")
    client.post(f"{URL}{later.pk}/check-in/")
    with tenant_context(clinic.world.tenant):
        assert Patient.objects.get(pk=P1_ID).visit_count == 2


def test_transition_with_stale_version_is_409(clinic: Clinic) -> None:
    response = login(clinic.world).post(f"{URL}{A1_ID}/cancel/", {"version": 5}, format="json")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "version_conflict"
    with tenant_context(clinic.world.tenant):
        assert Appointment.objects.get(pk=A1_ID).status == "scheduled"


def test_summary_counts_by_status_in_one_query(clinic: Clinic) -> None:
    client = login(clinic.world)
    client.post(f"{URL}{A1_ID}/check-in/")
    client.post(f"{URL}{A2_ID}/cancel/")
    response = client.get(f"{URL}summary/")
    assert response.json() == {
        "total": 2,
        "scheduled": 0,
        "checked_in": 1,
        "completed": 0,
        "cancelled": 1,
        "no_show": 0,
    }
    facility_only = client.get(f"{URL}summary/", {"facility": str(clinic.f1.pk)}).json()
    assert facility_only["total"] == 1
    from tests.query_budget import count_queries

    _, queries = count_queries(lambda: client.get(f"{URL}summary/"))
    aggregates = [sql for sql in queries if "clinical_appointment" in sql]
    assert len(aggregates) == 1


def test_filters_and_date_ranges(clinic: Clinic) -> None:
    client = login(clinic.world)
    rows = client.get(URL, {"starts_after": _iso(BASE_TIME + timedelta(hours=1))}).json()
    assert [row["id"] for row in rows["results"]] == [str(A2_ID)]
    rows = client.get(URL, {"date_from": "2031-03-03", "date_to": "2031-03-03"}).json()
    assert len(rows["results"]) == 2
    rows = client.get(URL, {"status": ["scheduled", "cancelled"], "patient": str(P1_ID)}).json()
    assert [row["id"] for row in rows["results"]] == [str(A1_ID)]
    assert client.get(URL, {"status": "done"}).status_code == 400
    assert client.get(URL, {"starts_after": "noon"}).status_code == 400
    ordered = client.get(URL, {"ordering": "-starts_at"}).json()
    assert [row["id"] for row in ordered["results"]] == [str(A2_ID), str(A1_ID)]


def test_list_query_count_is_constant(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    slot = iter(range(1, 1000))

    def add_rows(n: int) -> None:
        with tenant_context(clinic.world.tenant):
            for _ in range(n):
                patient = make_patient(facility=clinic.f1, mrn=f"AP-{next(slot)}")
                make_appointment(
                    patient=patient,
                    clinician=clinic.clinician,
                    start=BASE_TIME + timedelta(days=30, hours=next(slot)),
                )

    with tenant_context(clinic.world.tenant):
        Appointment.objects.filter(pk=A1_ID).update(facility=clinic.f2)
    assert_constant_queries(
        fetch=lambda: client.get(URL, {"page_size": 100}),
        add_rows=add_rows,
        expected_rows=lambda r: len(r.json()["results"]),
    )


def test_delete_archives_and_frees_the_slot(clinic: Clinic) -> None:
    client = login(clinic.world)
    assert client.delete(f"{URL}{A1_ID}/").status_code == 204
    assert client.get(f"{URL}{A1_ID}/").status_code == 404
    assert _book(client, BASE_TIME).status_code == 201


# --- real concurrency: committed rows, threads, separate connections ---------------------------


@pytest.fixture(scope="module")
def committed_clinic(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[tuple[str, str, str]]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        tenant = tenant_provision(
            slug="clinrace",
            name="Clinic race",
            kind="clinic",
            admin_email="admin@race.example",
            admin_password="race-Password-1",
        ).tenant
        with tenant_context(tenant):
            facility = Facility.objects.create(name="Race", code="R", timezone="UTC")
            patient = make_patient(facility=facility, mrn="RACE-1")
            doctor = User.objects.create_user(
                "doc@race.example", "race-Password-1", role=Role.CLINICIAN, is_active=True
            )
        try:
            yield tenant_host("clinrace"), str(patient.pk), str(doctor.pk)
        finally:
            connection.close()
            tenant_drop(slug="clinrace")


def test_concurrent_double_booking_creates_exactly_one(
    committed_clinic: tuple[str, str, str], django_db_blocker: pytest.FixtureRequest
) -> None:
    host, patient_id, doctor_id = committed_clinic
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        token = (
            APIClient(HTTP_HOST=host)
            .post(
                "/api/v1/auth/token/",
                {"email": "admin@race.example", "password": "race-Password-1"},
                format="json",
            )
            .json()["access"]
        )
        threads_count = 6
        barrier = threading.Barrier(threads_count)
        statuses: list[int] = []
        codes: list[str] = []
        lock = threading.Lock()

        def fire(offset: int) -> None:
            client = APIClient(HTTP_HOST=host)
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            start = datetime(2032, 1, 5, 9, offset, tzinfo=UTC)
            barrier.wait()
            try:
                response = client.post(
                    URL,
                    {
                        "patient": patient_id,
                        "clinician": doctor_id,
                        "starts_at": _iso(start),
                        "ends_at": _iso(start + timedelta(minutes=30)),
                    },
                    format="json",
                )
            finally:
                connection.close()
            with lock:
                statuses.append(response.status_code)
                if response.status_code != 201:
                    codes.append(response.json()["error"]["code"])

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        from tenants.models import Tenant

        with tenant_context(Tenant.objects.get(slug="clinrace")):
            assert Appointment.objects.filter(clinician_id=doctor_id).count() == 1
    assert Counter(statuses) == {201: 1, 409: threads_count - 1}
    assert set(codes) == {"appointment_conflict"}
