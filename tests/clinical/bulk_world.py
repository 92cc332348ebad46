"""Two committed clinic tenants for the Bulk Data export tests, with deliberately colliding data:
the same facility, patient, appointment and user ids, the same MRNs and emails in both.

An export reads in its own REPEATABLE READ transaction (it refuses to run inside another), so
these tests work on committed rows instead of pytest-django's rolled-back test transaction; the
tenants are provisioned once per module and dropped afterwards (alpha and beta stay untouched)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import redis
from django_tenants.utils import schema_context, tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from apikit.policy import AccessLevel, container_access_grant
from apikit.tenancy import activate_public
from clinical.bulkdata.services import bulk_export_delete
from clinical.models import Appointment, BulkExport, Facility, Patient
from tenants.models import Tenant
from tenants.services import tenant_drop, tenant_host, tenant_provision
from tests.committed import committed
from tests.conftest import TenantWorld, login

SLUGS = ("bulk-a", "bulk-b")
PASSWORD = "bulk-Password-1"
ADMIN = "admin@bulk.example"
VIEWER = "viewer@bulk.example"
CLINICIAN = "clinician@bulk.example"
RECEPTIONIST = "reception@bulk.example"
F1 = uuid.UUID("01900000-0000-7000-8000-0000000b0001")
F2 = uuid.UUID("01900000-0000-7000-8000-0000000b0002")
PATIENTS = [uuid.UUID(f"01900000-0000-7000-8000-0000000b1{n:03d}") for n in range(1, 6)]
APPOINTMENTS = [uuid.UUID(f"01900000-0000-7000-8000-0000000b2{n:03d}") for n in range(1, 6)]
USER_IDS = {
    VIEWER: uuid.UUID("01900000-0000-7000-8000-0000000b3001"),
    CLINICIAN: uuid.UUID("01900000-0000-7000-8000-0000000b3002"),
    RECEPTIONIST: uuid.UUID("01900000-0000-7000-8000-0000000b3003"),
}
ROLES = {VIEWER: Role.VIEWER, CLINICIAN: Role.CLINICIAN, RECEPTIONIST: Role.RECEPTIONIST}
START = datetime(2031, 3, 3, 9, 0, tzinfo=UTC)
PHONE = "+4915123456789"


def _drop() -> None:
    activate_public()
    for slug in SLUGS:
        if Tenant.objects.filter(slug=slug).exists():
            tenant_drop(slug=slug)


def _seed() -> None:
    _drop()
    for slug in SLUGS:
        tenant = tenant_provision(
            slug=slug,
            name=f"{slug} clinic",
            kind="clinic",
            admin_email=ADMIN,
            admin_password=PASSWORD,
        ).tenant
        with tenant_context(tenant):
            users = {}
            for email, role in ROLES.items():
                user = User(id=USER_IDS[email], email=email, role=role, is_active=True)
                user.full_name = f"{role} of {slug}"
                user.set_password(PASSWORD)
                user.save()
                users[email] = user
            f1 = Facility.objects.create(id=F1, name="North", code="N", timezone="Europe/Berlin")
            f2 = Facility.objects.create(id=F2, name="South", code="S", timezone="Europe/Berlin")
            container_access_grant(user=users[CLINICIAN], container=f1, level=AccessLevel.VIEW)
            for facility in (f1, f2):
                container_access_grant(
                    user=users[VIEWER], container=facility, level=AccessLevel.VIEW
                )
            for index, (patient_id, appointment_id) in enumerate(
                zip(PATIENTS, APPOINTMENTS, strict=True)
            ):
                facility = f1 if index % 2 == 0 else f2
                patient = Patient.objects.create(
                    id=patient_id,
                    facility=facility,
                    mrn=f"MRN-{index}",
                    given_name=f"Given{index}",
                    family_name=f"{slug}-family",
                    birth_date=date(1980, 1, 1 + index),
                    sex="female",
                    phone=PHONE,
                )
                Appointment.objects.create(
                    id=appointment_id,
                    patient=patient,
                    clinician=users[CLINICIAN],
                    facility=facility,
                    starts_at=START + timedelta(hours=index),
                    ends_at=START + timedelta(hours=index, minutes=30),
                )


@dataclass(frozen=True)
class BulkWorld:
    tenant: Tenant
    host: str

    @property
    def schema(self) -> str:
        return str(self.tenant.schema_name)

    def world(self) -> TenantWorld:
        return TenantWorld(tenant=self.tenant, host=self.host, password=PASSWORD)

    def client(self, email: str = ADMIN) -> APIClient:
        return login(self.world(), email=email, password=PASSWORD)

    def base(self) -> str:
        return f"http://{self.host}/fhir/R4/"


@pytest.fixture(scope="module")
def bulk_tenants(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, BulkWorld]]:
    with django_db_blocker.unblock():
        committed(_seed)
        try:
            yield {
                slug: BulkWorld(tenant=Tenant.objects.get(slug=slug), host=tenant_host(slug))
                for slug in SLUGS
            }
        finally:
            committed(_drop)


@pytest.fixture
def committed_db(django_db_blocker: Any) -> Iterator[None]:
    """Database access outside a test transaction: what the test writes commits."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def bulk_queue(settings: Any) -> Iterator[str]:
    """A queue of this test's own: the kick-off's message goes there, not to a running worker;
    the test runs the export in-process (or starts a worker on it). Deleted afterwards."""
    name = f"test-bulk-{uuid.uuid4().hex[:8]}"
    settings.FHIR_BULK_QUEUE = name
    yield name
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.delete(name)
    finally:
        client.close()


def exports_clear(world: BulkWorld) -> None:
    """No export left behind by a test (one live export per tenant blocks the next)."""
    with schema_context(world.schema):
        for export in BulkExport.objects.all():
            bulk_export_delete(export=export)
