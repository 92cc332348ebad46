"""A committed two-tenant world for the hardening suites (security, fuzz, browser).

Each suite provisions its own pair of tenants (``<prefix>-a`` and ``<prefix>-b``) and COMMITS the
rows, because the fuzz and browser suites talk to a gunicorn in another process, and the security
suite compares B's rows before and after an attack. The pair is dropped when the suite ends, so
no other test ever sees it.

Ids collide by construction: every seeded object has the SAME primary key in A and in B, and
every human-readable text carries the tenant's marker (``ALFAMARK`` in A, ``BRAVOMARK`` in B), so
a response leaking B's row into A is caught by a substring check. B additionally holds objects
whose ids exist nowhere in A (``b_only``): A reading them by id must answer 404.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django_tenants.utils import quote_schema_name, tenant_context

from accounts.models import Invitation, User
from accounts.roles import Role
from apikit.policy import AccessLevel, container_access_grant
from apikit.tenancy import activate_public
from clinical.models import (
    Appointment,
    Facility,
    Patient,
    PatientDocument,
    Prescription,
    PrescriptionItem,
)
from clinical.services import document_create
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from tenants.models import Plan, Tenant
from tenants.services import tenant_drop, tenant_host, tenant_provision

MARKERS = {"a": "ALFAMARK", "b": "BRAVOMARK"}
PASSWORDS = {"a": "Alfa-Secret-Pass-1", "b": "Bravo-Secret-Pass-2"}
PLAN_NAME = "hardening-unthrottled"
ADMIN_EMAIL = "admin@example.com"
ROLES: tuple[str, ...] = tuple(role.value for role in Role)


def _uid(group: int, n: int) -> uuid.UUID:
    return uuid.UUID(f"01900000-0000-7000-8{group:03x}-{n:012x}")


# Every role's user, with the same id and email in both tenants.
USER_IDS: dict[str, uuid.UUID] = {role: _uid(0x101, i) for i, role in enumerate(ROLES, start=1)}


def email_for(role: str) -> str:
    return ADMIN_EMAIL if role == Role.TENANT_ADMIN else f"{role}@example.com"


# Colliding object ids (present in A and B), by model label.
SHARED: dict[str, uuid.UUID] = {
    "clinical.facility": _uid(0x201, 1),
    "clinical.facility#2": _uid(0x201, 2),
    "clinical.patient": _uid(0x202, 1),
    "clinical.patient#2": _uid(0x202, 2),
    "clinical.appointment": _uid(0x203, 1),
    "clinical.prescription": _uid(0x204, 1),
    "clinical.patientdocument": _uid(0x205, 1),
    "farms.farm": _uid(0x301, 1),
    "farms.farm#2": _uid(0x301, 2),
    "farms.field": _uid(0x302, 1),
    "farms.field#2": _uid(0x302, 2),
    "farms.crop": _uid(0x303, 1),
    "farms.planting": _uid(0x304, 1),
    "farms.observation": _uid(0x305, 1),
    "farms.harvest": _uid(0x306, 1),
    "accounts.user": USER_IDS[Role.CLINICIAN],
    "accounts.invitation": _uid(0x102, 1),
}
# Objects only B has (ids never used in A).
B_ONLY: dict[str, uuid.UUID] = {
    "clinical.facility": _uid(0x2B1, 1),
    "clinical.patient": _uid(0x2B2, 1),
    "clinical.appointment": _uid(0x2B3, 1),
    "clinical.prescription": _uid(0x2B4, 1),
    "clinical.patientdocument": _uid(0x2B5, 1),
    "farms.farm": _uid(0x3B1, 1),
    "farms.field": _uid(0x3B2, 1),
    "farms.crop": _uid(0x3B3, 1),
    "farms.planting": _uid(0x3B4, 1),
    "farms.observation": _uid(0x3B5, 1),
    "farms.harvest": _uid(0x3B6, 1),
    "accounts.user": _uid(0x1B1, 1),
    "accounts.invitation": _uid(0x1B2, 1),
}

# A fixed future Monday, far from DST switches.
BASE_TIME = dt.datetime(2031, 3, 3, 9, 0, tzinfo=dt.UTC)


def _square(lon: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def pdf_bytes(marker: str) -> bytes:
    return b"%PDF-1.4\n% " + marker.encode() + b" document\n%%EOF\n"


@dataclass(frozen=True)
class Side:
    """One tenant of the pair."""

    key: str  # "a" or "b"
    slug: str
    host: str
    schema: str
    marker: str
    password: str
    document_path: str = ""

    def credentials(self, role: str) -> dict[str, str]:
        return {"email": email_for(role), "password": self.password}


@dataclass(frozen=True)
class World:
    a: Side
    b: Side
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sides(self) -> tuple[Side, Side]:
        return (self.a, self.b)


def _plan() -> Plan:
    plan, _ = Plan.objects.update_or_create(
        name=PLAN_NAME,
        defaults={
            "requests_per_minute": 10**9,
            "user_burst_per_minute": 10**9,
            "user_sustained_per_day": 10**9,
        },
    )
    return plan


def _user(role: str, *, pk: uuid.UUID, marker: str, password: str, email: str = "") -> User:
    user = User(
        id=pk,
        email=email or email_for(role),
        role=role,
        is_active=True,
        is_staff=role == Role.TENANT_ADMIN,
        full_name=f"{marker} {role}",
    )
    user.set_password(password)
    user.save()
    return user


def _clinical(marker: str, key: str, users: dict[str, User]) -> str:
    admin, clinician = users[Role.TENANT_ADMIN], users[Role.CLINICIAN]
    f1 = Facility.objects.create(
        id=SHARED["clinical.facility"], name=f"{marker} North", code="N1", timezone="Europe/Berlin"
    )
    f2 = Facility.objects.create(
        id=SHARED["clinical.facility#2"], name=f"{marker} South", code="S1", timezone="UTC"
    )
    for role, level in (
        (Role.CLINICIAN, AccessLevel.MANAGE),
        (Role.NURSE, AccessLevel.MANAGE),
        (Role.RECEPTIONIST, AccessLevel.VIEW),
        (Role.VIEWER, AccessLevel.VIEW),
    ):
        container_access_grant(user=users[role], container=f1, level=level)
    common = {"birth_date": dt.date(1980, 5, 17), "sex": "female", "phone": "+4915112345678"}
    p1 = Patient.objects.create(
        id=SHARED["clinical.patient"],
        facility=f1,
        mrn="MRN-1",
        given_name=f"{marker}",
        family_name="Lovelace",
        assigned_clinician=clinician,
        **common,
    )
    p2 = Patient.objects.create(
        id=SHARED["clinical.patient#2"],
        facility=f2,
        mrn="MRN-2",
        given_name=f"{marker}",
        family_name="Hopper",
        **common,
    )
    del p2
    Appointment.objects.create(
        id=SHARED["clinical.appointment"],
        patient=p1,
        clinician=clinician,
        facility=f1,
        starts_at=BASE_TIME,
        ends_at=BASE_TIME + dt.timedelta(minutes=30),
        reason=f"{marker} checkup",
    )
    rx = Prescription.objects.create(
        id=SHARED["clinical.prescription"], patient=p1, prescriber=clinician, notes=f"{marker} rx"
    )
    PrescriptionItem.objects.create(
        prescription=rx,
        medication=f"{marker} Amoxicillin",
        dose="500 mg",
        route="oral",
        frequency="3x daily",
        duration_days=7,
        quantity=21,
    )
    document = document_create(
        patient=p1,
        upload=SimpleUploadedFile(f"{marker}.pdf", pdf_bytes(marker), "application/pdf"),
        title=f"{marker} scan",
        actor=admin,
    )
    PatientDocument.objects.filter(pk=document.pk).update(id=SHARED["clinical.patientdocument"])
    if key == "b":
        f3 = Facility.objects.create(
            id=B_ONLY["clinical.facility"], name=f"{marker} Only", code="B3", timezone="UTC"
        )
        p3 = Patient.objects.create(
            id=B_ONLY["clinical.patient"],
            facility=f3,
            mrn="MRN-B3",
            given_name=marker,
            family_name="Only",
            **common,
        )
        Appointment.objects.create(
            id=B_ONLY["clinical.appointment"],
            patient=p3,
            clinician=clinician,
            facility=f3,
            starts_at=BASE_TIME + dt.timedelta(days=1),
            ends_at=BASE_TIME + dt.timedelta(days=1, minutes=30),
            reason=f"{marker} only",
        )
        Prescription.objects.create(
            id=B_ONLY["clinical.prescription"], patient=p3, prescriber=clinician, notes=marker
        )
        only_doc = document_create(
            patient=p3,
            upload=SimpleUploadedFile("only.pdf", pdf_bytes(marker), "application/pdf"),
            title=f"{marker} only scan",
            actor=admin,
        )
        PatientDocument.objects.filter(pk=only_doc.pk).update(id=B_ONLY["clinical.patientdocument"])
    return PatientDocument.objects.get(pk=SHARED["clinical.patientdocument"]).path


def _farms(marker: str, key: str, users: dict[str, User]) -> None:
    now = dt.datetime(2026, 4, 2, 8, 0, tzinfo=dt.UTC)

    def farm_tree(suffix: str, ids: dict[str, uuid.UUID], second: bool = False) -> Farm:
        farm = Farm.objects.create(
            id=ids["farm"], name=f"{marker} farm{suffix}", region=f"{marker} region"
        )
        lon = 36.15 if second else 36.05
        fld = Field.objects.create(
            id=ids["field"],
            farm=farm,
            name=f"{marker} block{suffix}",
            boundary=_square(lon, -0.35),
            area_ha=120.0,
            bbox_min_lon=lon,
            bbox_min_lat=-0.35,
            bbox_max_lon=lon + 0.01,
            bbox_max_lat=-0.34,
        )
        if "planting" in ids:
            planting = Planting.objects.create(
                id=ids["planting"],
                field=fld,
                crop=Crop.objects.get(pk=ids["crop"]),
                season=f"{marker} long rains",
                planted_on=dt.date(2026, 3, 20),
                status=Planting.Status.GROWING,
            )
            Observation.objects.create(
                id=ids["observation"],
                field=fld,
                planting=planting,
                observed_at=now,
                kind="rainfall",
                value=12.5,
                unit="mm",
                text=f"{marker} rain",
            )
            Harvest.objects.create(
                id=ids["harvest"],
                planting=planting,
                harvested_on=dt.date(2026, 4, 1),
                quantity_kg=Decimal(5),
                grade=f"{marker}",
            )
        return farm

    Crop.objects.create(id=SHARED["farms.crop"], name=f"{marker} Maize", category="cereal")
    shared = {
        name: SHARED[f"farms.{name}"]
        for name in ("farm", "field", "crop", "planting", "observation", "harvest")
    }
    fa1 = farm_tree("", shared)
    farm_tree(" 2", {"farm": SHARED["farms.farm#2"], "field": SHARED["farms.field#2"]}, True)
    container_access_grant(user=users[Role.FIELD_AGENT], container=fa1, level=AccessLevel.VIEW)
    container_access_grant(user=users[Role.AGRONOMIST], container=fa1, level=AccessLevel.MANAGE)
    container_access_grant(user=users[Role.VIEWER], container=fa1, level=AccessLevel.VIEW)
    if key == "b":
        Crop.objects.create(id=B_ONLY["farms.crop"], name=f"{marker} Only crop", category="other")
        only = {
            name: B_ONLY[f"farms.{name}"]
            for name in ("farm", "field", "crop", "planting", "observation", "harvest")
        }
        farm_tree(" only", only)


def _invitation(pk: uuid.UUID, *, email: str) -> None:
    """An open invitation (its token is never known: only the hash is stored)."""
    now = dt.datetime.now(dt.UTC)
    Invitation.objects.create(
        id=pk, email=email, role=Role.NURSE, token_hash=hashlib.sha256(pk.bytes).hexdigest(),
        sent_at=now, expires_at=now + dt.timedelta(days=7),
    )  # fmt: skip


def _seed_side(key: str, prefix: str) -> Side:
    slug = f"{prefix}-{key}"
    marker, password = MARKERS[key], PASSWORDS[key]
    tenant = tenant_provision(
        slug=slug,
        name=f"{marker} Org",
        kind=Tenant.Kind.MIXED,
        admin_email=ADMIN_EMAIL,
        admin_password=password,
        plan_name=_plan().name,
    ).tenant
    with tenant_context(tenant):
        # The provisioned admin gets the shared id (nothing references it yet).
        User.objects.filter(email=ADMIN_EMAIL).update(
            id=USER_IDS[Role.TENANT_ADMIN], full_name=f"{marker} tenant_admin"
        )
        users = {Role.TENANT_ADMIN.value: User.objects.get(email=ADMIN_EMAIL)}
        for role in ROLES:
            if role != Role.TENANT_ADMIN:
                users[role] = _user(role, pk=USER_IDS[role], marker=marker, password=password)
        if key == "b":
            _user(
                Role.CLINICIAN,
                pk=B_ONLY["accounts.user"],
                marker=marker,
                password=password,
                email="only-b@example.com",
            )
        _invitation(SHARED["accounts.invitation"], email=f"invitee-{marker.lower()}@example.com")
        if key == "b":
            _invitation(B_ONLY["accounts.invitation"], email="only-b-invitee@example.com")
        document_path = _clinical(marker, key, users)
        _farms(marker, key, users)
    activate_public()
    return Side(
        key=key,
        slug=slug,
        host=tenant_host(slug),
        schema=tenant.schema_name,
        marker=marker,
        password=password,
        document_path=document_path,
    )


def world_create(prefix: str) -> World:
    """Provision and seed ``<prefix>-a`` and ``<prefix>-b`` (committed: call outside any
    transaction, on the test database)."""
    assert connection.settings_dict["NAME"].startswith("test_"), "never seed a real database"
    world_drop(prefix)
    return World(a=_seed_side("a", prefix), b=_seed_side("b", prefix))


def world_drop(prefix: str) -> None:
    activate_public()
    for key in ("a", "b"):
        slug = f"{prefix}-{key}"
        if Tenant.objects.filter(slug=slug).exists():
            tenant_drop(slug=slug)
    # The suites' plan goes with the last pair that used it.
    Plan.objects.filter(name=PLAN_NAME, tenants__isnull=True).delete()


def schema_fingerprint(schema: str) -> dict[str, str]:
    """Per table of ``schema``: row count and an order-independent digest of every row. Equal
    fingerprints mean nothing in the schema changed."""
    quoted = quote_schema_name(schema)
    result: dict[str, str] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            [schema],
        )
        tables = [row[0] for row in cursor.fetchall()]
        for table in tables:
            cursor.execute(
                f"SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') "
                f'FROM {quoted}."{table}" t'
            )
            count, digest = cursor.fetchone()
            result[table] = f"{count}:{digest}"
    return result


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
