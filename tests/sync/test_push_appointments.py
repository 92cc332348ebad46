"""Sync push of appointments: double booking (server rows, within a batch, and a race between
two devices on committed data), cancellation, and the WatermelonDB push shape."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from django.db import connection, transaction
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from apikit.ids import new_id
from clinical.models import Appointment, Facility, Patient
from farms.models import Observation
from tenants.models import Tenant
from tenants.services import tenant_drop, tenant_host, tenant_provision
from tests.clinical.conftest import A1_ID, BASE_TIME, make_patient
from tests.farms.conftest import FIELD1, OBS1
from tests.sync.conftest import SyncWorld, login
from tests.sync.test_push import PUSH, observation, push, results


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def booking(
    patient: Any, clinician: Any, start: datetime, minutes: int = 30, **extra: Any
) -> dict[str, Any]:
    return {
        "op": "upsert",
        "id": str(new_id()),
        "base_version": None,
        "fields": {
            "patient_id": str(patient),
            "clinician_id": str(clinician),
            "starts_at": _iso(start),
            "ends_at": _iso(start + timedelta(minutes=minutes)),
            "reason": "check-up",
            **extra,
        },
    }


def test_double_booking_against_the_server_and_within_the_batch(sync_alpha: SyncWorld) -> None:
    clinic = sync_alpha.clinic
    client = login(sync_alpha.world)
    taken = booking(clinic.p1.pk, clinic.clinician.pk, BASE_TIME + timedelta(minutes=10))
    free = booking(clinic.p1.pk, clinic.clinician.pk, BASE_TIME + timedelta(hours=5))
    clash = booking(clinic.p1.pk, clinic.clinician.pk, BASE_TIME + timedelta(hours=5, minutes=15))
    back_to_back = booking(clinic.p1.pk, clinic.clinician.pk, BASE_TIME + timedelta(hours=5.5))
    out = results(push(client, {"appointments": [taken, free, clash, back_to_back]}))
    assert [r["status"] for r in out] == ["conflict", "applied", "conflict", "applied"]
    assert out[0]["reason"] == "slot_taken"
    assert out[0]["errors"][0]["code"] == "appointment_conflict"
    assert out[2]["reason"] == "slot_taken"
    with tenant_context(sync_alpha.world.tenant):
        stored = Appointment.objects.get(pk=free["id"])
        assert stored.facility_id == clinic.p1.facility_id  # defaults to the patient's
        assert stored.created_by_id is not None


def test_cancelling_by_push_frees_the_slot_in_the_same_batch(sync_alpha: SyncWorld) -> None:
    clinic = sync_alpha.clinic
    client = login(sync_alpha.world)
    cancel = {
        "op": "upsert",
        "id": str(A1_ID),
        "base_version": 1,
        "fields": {"status": "cancelled", "cancellation_reason": "patient called"},
    }
    rebook = booking(clinic.p1.pk, clinic.clinician.pk, BASE_TIME)
    out = results(push(client, {"appointments": [cancel, rebook]}))
    assert [r["status"] for r in out] == ["applied", "applied"]
    with tenant_context(sync_alpha.world.tenant):
        cancelled = Appointment.objects.get(pk=A1_ID)
    assert cancelled.status == "cancelled"
    assert cancelled.cancelled_at is not None
    check_in = {**cancel, "base_version": 2, "fields": {"status": "checked_in"}}
    out = results(push(client, {"appointments": [check_in]}))
    assert out[0]["status"] == "rejected"
    assert out[0]["errors"][0]["code"] == "invalid_transition"


def test_unknown_patient_and_non_clinician_are_rejected(sync_alpha: SyncWorld) -> None:
    clinic = sync_alpha.clinic
    client = login(sync_alpha.world)
    with tenant_context(sync_alpha.world.tenant):
        admin_id = User.objects.get(role=Role.TENANT_ADMIN).pk
    rows = [
        booking(new_id(), clinic.clinician.pk, BASE_TIME + timedelta(days=3)),
        booking(clinic.p1.pk, admin_id, BASE_TIME + timedelta(days=3)),
    ]
    out = results(push(client, {"appointments": rows}))
    assert [r["status"] for r in out] == ["rejected", "rejected"]
    assert out[0]["errors"][0]["code"] == "dependency_missing"
    assert out[1]["errors"][0]["field"] == "clinician_id"


# --- WatermelonDB ------------------------------------------------------------------------------


def test_watermelondb_push_shape(sync_alpha: SyncWorld) -> None:
    """``?format=wmdb``: {changes: {table: {created, updated, deleted}}, lastPulledAt}; raw
    records carry columns flat plus _status/_changed; epoch-millisecond times are accepted;
    rejected ids come back in experimentalRejectedIds."""
    client = sync_alpha.farms.agent_client()
    created = observation()["fields"] | {
        "id": str(new_id()),
        "_status": "created",
        "_changed": "",
        "observed_at": int((datetime.now(UTC) - timedelta(hours=2)).timestamp() * 1000),
    }
    bad = observation()["fields"] | {"id": str(new_id()), "kind": "volcano", "_status": "created"}
    updated = {"id": str(OBS1), "version": 1, "field_id": str(FIELD1), "value": 50.0}
    body = {
        "changes": {
            "observations": {"created": [created, bad], "updated": [updated], "deleted": []}
        },
        "lastPulledAt": 1_700_000_000_000,
    }
    response = client.post(
        PUSH + "?format=wmdb",
        data=orjson.dumps(body),
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert [r["status"] for r in data["results"]] == ["applied", "rejected", "rejected"]
    assert data["experimentalRejectedIds"] == {"observations": [bad["id"], str(OBS1)]}
    with tenant_context(sync_alpha.world.tenant):
        stored = Observation.objects.get(pk=created["id"])
    assert stored.observed_at.year >= 2025


# --- statement count ---------------------------------------------------------------------------


def test_statement_count_is_the_same_for_10_and_500_rows(sync_alpha: SyncWorld) -> None:
    from django.test.utils import CaptureQueriesContext

    client = sync_alpha.farms.agent_client()
    push(client, {"observations": [observation()]})  # warm caches

    def count(rows: int) -> int:
        batch = [observation(text=f"r{i}") for i in range(rows)]
        with CaptureQueriesContext(connection) as captured:
            body = push(client, {"observations": batch}).json()
        assert body["summary"]["applied"] == rows
        return len(captured.captured_queries)

    assert count(10) == count(500)


# --- real concurrency: committed rows, two devices ---------------------------------------------

RACE_PASSWORD = "race-Password-1"


@pytest.fixture(scope="module")
def committed_clinic(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[tuple[str, str, str]]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        tenant = tenant_provision(
            slug="pushrace",
            name="Push race",
            kind="clinic",
            admin_email="admin@pushrace.example",
            admin_password=RACE_PASSWORD,
        ).tenant
        with tenant_context(tenant):
            facility = Facility.objects.create(name="Race", code="R", timezone="UTC")
            patient = make_patient(facility=facility, mrn="RACE-1")
            doctor = User.objects.create_user(
                "doc@pushrace.example", RACE_PASSWORD, role=Role.CLINICIAN, is_active=True
            )
        try:
            yield tenant_host("pushrace"), str(patient.pk), str(doctor.pk)
        finally:
            connection.close()
            tenant_drop(slug="pushrace")


def _device_client(host: str, name: str) -> APIClient:
    client = APIClient(HTTP_HOST=host)
    credentials = {"email": "admin@pushrace.example", "password": RACE_PASSWORD}
    token = client.post("/api/v1/auth/token/", credentials, format="json").json()["access"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    device = client.post(
        "/api/v1/sync/devices/", {"name": name, "platform": "android"}, format="json"
    )
    assert device.status_code == 201, device.content
    with_device = {**credentials, "device": device.json()["id"]}
    token = client.post("/api/v1/auth/token/", with_device, format="json").json()["access"]
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


def test_two_devices_racing_for_one_slot(
    committed_clinic: tuple[str, str, str], django_db_blocker: pytest.FixtureRequest
) -> None:
    """Two devices push the same slot at once: one applied, one conflict (slot_taken); the
    exclusion constraint is the judge, and the loser's batch still answers 200."""
    host, patient_id, doctor_id = committed_clinic
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        clients = [_device_client(host, f"tablet {i}") for i in range(2)]
        start = datetime(2032, 2, 2, 9, 0, tzinfo=UTC)
        barrier = threading.Barrier(2)
        outcomes: list[dict[str, Any]] = []
        lock = threading.Lock()

        def fire(index: int) -> None:
            row = booking(patient_id, doctor_id, start + timedelta(minutes=index * 10))
            barrier.wait()
            try:
                response = push(clients[index], {"appointments": [row]})
            finally:
                connection.close()
            with lock:
                outcomes.append(results(response)[0])

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        with tenant_context(Tenant.objects.get(slug="pushrace")):
            assert Appointment.objects.filter(clinician_id=doctor_id).count() == 1
    assert sorted(r["status"] for r in outcomes) == ["applied", "conflict"]
    assert [r["reason"] for r in outcomes if r["status"] == "conflict"] == ["slot_taken"]


def test_slot_taken_after_the_checks_falls_back_per_row(
    committed_clinic: tuple[str, str, str],
    django_db_blocker: pytest.FixtureRequest,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The slow path, made deterministic: another writer holds an uncommitted booking of the
    slot while the push runs its overlap check (sees nothing) and inserts (blocks on the
    exclusion constraint); the writer commits, the push's statement fails, and the table's rows
    are replayed one savepoint each: the clashing row is a conflict, the other is applied."""
    host, patient_id, doctor_id = committed_clinic
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        client = _device_client(host, "slow path")
        tenant = Tenant.objects.get(slug="pushrace")
        start = datetime(2032, 3, 3, 9, 0, tzinfo=UTC)
        holding, release = threading.Event(), threading.Event()

        def hold() -> None:
            try:
                with tenant_context(tenant), transaction.atomic():
                    patient = Patient.objects.get(pk=patient_id)
                    Appointment.objects.create(
                        patient=patient,
                        clinician_id=doctor_id,
                        facility_id=patient.facility_id,
                        starts_at=start,
                        ends_at=start + timedelta(minutes=30),
                    )
                    holding.set()
                    release.wait(timeout=30)
            finally:
                connection.close()

        holder = threading.Thread(target=hold)
        holder.start()
        assert holding.wait(timeout=30)
        clash = booking(patient_id, doctor_id, start + timedelta(minutes=5))
        other = booking(patient_id, doctor_id, start + timedelta(hours=3))
        timer = threading.Timer(1.0, release.set)  # commit while the push waits on the lock
        timer.start()
        try:
            out = results(push(client, {"appointments": [clash, other]}))
        finally:
            release.set()
            holder.join(timeout=30)
            connection.close()
    assert [r["status"] for r in out] == ["conflict", "applied"]
    assert out[0]["reason"] == "slot_taken"
    assert any("slow path for appointments" in m for m in caplog.messages)
