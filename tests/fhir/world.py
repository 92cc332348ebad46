"""The FHIR tests' data on top of the clinical fixtures (tests/clinical/conftest.py): phones of
both kinds, a clinician without a name, a sub-minute and a cancelled appointment, and staff of
the roles whose views differ (viewer: no phones; receptionist; agronomist: no clinical rights)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from apikit.policy import AccessLevel, container_access_grant
from clinical.models import Appointment, AppointmentStatus, Patient
from tests.clinical.conftest import (
    BASE_TIME,
    NURSE_EMAIL,
    STAFF_PASSWORD,
    VIEWER_EMAIL,
    Clinic,
    make_appointment,
    make_user,
)
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL

BASE = "/fhir/R4"
FHIR_JSON = "application/fhir+json; charset=utf-8"
MOBILE = "+4915123456789"  # German mobile range
LANDLINE = "+493012345678"  # Berlin fixed line
RECEPTIONIST_EMAIL = "receptionist@example.com"
AGRONOMIST_EMAIL = "agronomist@example.com"
NAMELESS_ID = uuid.UUID("01900000-0000-7000-8000-0000000a0009")
SHORT_ID = uuid.UUID("01900000-0000-7000-8000-0000000e0009")
CANCELLED_ID = uuid.UUID("01900000-0000-7000-8000-0000000e000a")
# Every resource type the base serves.
RESOURCE_TYPES = ("Patient", "Appointment", "Practitioner", "Location", "Organization")


@dataclass(frozen=True)
class FhirClinic:
    clinic: Clinic
    nameless: User

    @property
    def world(self) -> Any:
        return self.clinic.world

    def token(self, email: str | None = None) -> str:
        """An access token of ``email`` (tenant_admin by default)."""
        # The tenant's admin and the seeded clinician have the tenant's password.
        password = self.world.password if email in (None, CLINICIAN_EMAIL) else STAFF_PASSWORD
        response = self.world.client().post(
            "/api/v1/auth/token/",
            {"email": email or ADMIN_EMAIL, "password": password},
            format="json",
        )
        assert response.status_code == 200, response.content
        return str(response.json()["access"])

    def client(self, email: str | None = None) -> APIClient:
        """Logged in (tenant_admin by default)."""
        client = self.world.client()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token(email)}")
        return client


def fhir_clinic(clinic: Clinic) -> FhirClinic:
    with tenant_context(clinic.world.tenant):
        Patient.objects.filter(pk=clinic.p1.pk).update(phone=MOBILE)
        nameless = User(id=NAMELESS_ID, email="nameless@example.com", role=Role.CLINICIAN)
        nameless.is_active = True
        nameless.full_name = ""
        nameless.set_password(STAFF_PASSWORD)
        nameless.save()
        Patient.objects.filter(pk=clinic.p2.pk).update(phone=LANDLINE, assigned_clinician=nameless)
        # Thirty seconds: valid in Verdant, no minutesDuration in FHIR (it must be >= 1).
        Appointment.objects.create(
            id=SHORT_ID,
            patient=clinic.p1,
            clinician=nameless,
            facility=clinic.f1,
            starts_at=BASE_TIME + timedelta(days=1),
            ends_at=BASE_TIME + timedelta(days=1, seconds=30),
        )
        make_appointment(
            id=CANCELLED_ID,
            patient=clinic.p2,
            clinician=nameless,
            start=BASE_TIME + timedelta(days=2),
            status=AppointmentStatus.CANCELLED,
            cancellation_reason="Patient ill",
            reason="Check-up",
        )
        viewer = make_user(email=VIEWER_EMAIL, role=Role.VIEWER)
        nurse = make_user(email=NURSE_EMAIL, role=Role.NURSE)
        receptionist = make_user(email=RECEPTIONIST_EMAIL, role=Role.RECEPTIONIST)
        make_user(email=AGRONOMIST_EMAIL, role=Role.AGRONOMIST)
        for user in (viewer, nurse, receptionist):
            container_access_grant(user=user, container=clinic.f1, level=AccessLevel.VIEW)
            container_access_grant(user=user, container=clinic.f2, level=AccessLevel.VIEW)
    return FhirClinic(clinic=clinic, nameless=nameless)


def references(resource: Any) -> list[str]:
    """Every ``reference`` value anywhere in ``resource``."""
    found: list[str] = []
    if isinstance(resource, dict):
        for key, value in resource.items():
            if key == "reference" and isinstance(value, str):
                found.append(value)
            else:
                found += references(value)
    elif isinstance(resource, list):
        for item in resource:
            found += references(item)
    return found


def empty_values(resource: Any, path: str = "") -> list[str]:
    """Paths holding "", [] or {} (FHIR forbids them all)."""
    found: list[str] = []
    if resource in ("", [], {}):
        return [path or "/"]
    if isinstance(resource, dict):
        for key, value in resource.items():
            found += empty_values(value, f"{path}/{key}")
    elif isinstance(resource, list):
        for index, item in enumerate(resource):
            found += empty_values(item, f"{path}/{index}")
    return found
