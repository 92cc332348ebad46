"""Clinical fixtures: in each tenant, two facilities (F1, F2) with the SAME ids in alpha and beta,
a patient and an appointment in each, and the shared clinician granted ``manage`` on F1 only."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from django_tenants.utils import tenant_context

from accounts.models import User
from apikit.policy import AccessLevel, container_access_grant
from clinical.models import Appointment, Facility, Patient, Prescription, PrescriptionItem
from tests.conftest import CLINICIAN_ID, TenantWorld

F1_ID = uuid.UUID("01900000-0000-7000-8000-0000000c0001")
F2_ID = uuid.UUID("01900000-0000-7000-8000-0000000c0002")
P1_ID = uuid.UUID("01900000-0000-7000-8000-0000000d0001")
P2_ID = uuid.UUID("01900000-0000-7000-8000-0000000d0002")
A1_ID = uuid.UUID("01900000-0000-7000-8000-0000000e0001")
A2_ID = uuid.UUID("01900000-0000-7000-8000-0000000e0002")
RX1_ID = uuid.UUID("01900000-0000-7000-8000-0000000f0001")
RX2_ID = uuid.UUID("01900000-0000-7000-8000-0000000f0002")
NURSE_EMAIL = "nurse@example.com"
VIEWER_EMAIL = "viewer@example.com"
STAFF_PASSWORD = "staff-Password-9"
# A fixed future Monday, 09:00 UTC: far from any DST switch in the facilities' zones.
BASE_TIME = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Clinic:
    world: TenantWorld
    f1: Facility
    f2: Facility
    p1: Patient
    p2: Patient
    a1: Appointment
    a2: Appointment
    clinician: User


def make_user(*, email: str, role: str, full_name: str = "") -> User:
    user = User(email=email, role=role, is_active=True, full_name=full_name or email)
    user.set_password(STAFF_PASSWORD)
    user.save()
    return user


def make_patient(
    *, facility: Facility, mrn: str, given: str = "Ada", family: str = "Lovelace", **extra: object
) -> Patient:
    return Patient.objects.create(
        facility=facility,
        mrn=mrn,
        given_name=given,
        family_name=family,
        birth_date=extra.pop("birth_date", date(1980, 5, 17)),
        sex=extra.pop("sex", "female"),
        **extra,
    )


def make_appointment(
    *, patient: Patient, clinician: User, start: datetime, minutes: int = 30, **extra: object
) -> Appointment:
    return Appointment.objects.create(
        patient=patient,
        clinician=clinician,
        facility=patient.facility,
        starts_at=start,
        ends_at=start + timedelta(minutes=minutes),
        **extra,
    )


def make_prescription(*, pk: uuid.UUID | None, patient: Patient, prescriber: User) -> Prescription:
    prescription = Prescription.objects.create(
        **({"id": pk} if pk else {}), patient=patient, prescriber=prescriber
    )
    PrescriptionItem.objects.create(
        prescription=prescription,
        medication="Amoxicillin",
        dose="500 mg",
        route="oral",
        frequency="3x daily",
        duration_days=7,
        quantity=21,
    )
    return prescription


def _clinic(world: TenantWorld) -> Clinic:
    with tenant_context(world.tenant):
        f1 = Facility.objects.create(id=F1_ID, name="North", code="N1", timezone="Europe/Berlin")
        f2 = Facility.objects.create(id=F2_ID, name="South", code="S1", timezone="America/New_York")
        clinician = User.objects.get(pk=CLINICIAN_ID)
        container_access_grant(user=clinician, container=f1, level=AccessLevel.MANAGE)
        p1 = make_patient(id=P1_ID, facility=f1, mrn="MRN-1", given="Ada", family="Lovelace")
        p2 = make_patient(id=P2_ID, facility=f2, mrn="MRN-2", given="Grace", family="Hopper")
        a1 = make_appointment(id=A1_ID, patient=p1, clinician=clinician, start=BASE_TIME)
        a2 = make_appointment(
            id=A2_ID, patient=p2, clinician=clinician, start=BASE_TIME + timedelta(hours=2)
        )
        make_prescription(pk=RX1_ID, patient=p1, prescriber=clinician)
        make_prescription(pk=RX2_ID, patient=p2, prescriber=clinician)
        return Clinic(world=world, f1=f1, f2=f2, p1=p1, p2=p2, a1=a1, a2=a2, clinician=clinician)


@pytest.fixture
def clinic(alpha: TenantWorld) -> Clinic:
    return _clinic(alpha)


@pytest.fixture
def clinic_beta(beta: TenantWorld) -> Clinic:
    return _clinic(beta)
