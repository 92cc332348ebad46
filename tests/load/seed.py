"""Data for the load run, written through the product's services in this process (Django set up
against the harness's private database): two tenants with colliding shapes, each with an admin,
clinicians, a facility, patients, a farm and fields."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from datetime import time as clock
from typing import Any

SLUGS = ("loada", "loadb")
PASSWORD = "Load-Harness-Pass-91"
ADMIN_EMAIL = "admin@load.example"
CLINICIANS = 12  # enough that every client thread books its own clinician's slots
PATIENTS = 200
FIELDS = 4


@dataclass
class TenantSeed:
    slug: str
    host: str
    schema: str
    facility_id: str
    clinician_ids: list[str]
    patient_ids: list[str]
    field_ids: list[str]
    reminder_patient_ids: list[str] = field(default_factory=list)


def _square(lon: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def migrate() -> None:
    from django.core.management import call_command

    from tenants.services import template_schema_ensure

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)
    template_schema_ensure()


def seed_tenants() -> list[TenantSeed]:
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from accounts.roles import Role
    from apikit.tenancy import activate_public
    from clinical.models import Facility, Patient, ReminderSettings
    from farms import services as farm_services
    from tenants.models import Plan, Tenant
    from tenants.services import tenant_host, tenant_provision

    seeds = []
    rng = random.Random(10)  # noqa: S311  (test data)
    for slug in SLUGS:
        activate_public()
        tenant = tenant_provision(
            slug=slug,
            name=f"Load {slug}",
            kind=Tenant.Kind.MIXED,
            admin_email=ADMIN_EMAIL,
            admin_password=PASSWORD,
        ).tenant
        # Throttles stay on (every request pays their Redis round trip: the Redis fault must
        # show them failing open) but must not refuse the generator's traffic or SMS.
        Plan.objects.filter(pk=tenant.plan_id).update(
            requests_per_minute=10**9,
            user_burst_per_minute=10**9,
            user_sustained_per_day=10**9,
            sms_daily_quota=10**6,
        )
        with tenant_context(tenant):
            admin = User.objects.get(email=ADMIN_EMAIL)
            facility = Facility.objects.create(name=f"Clinic {slug}", code="C1", timezone="UTC")
            # No quiet hours: the due reminders must go out whatever the time of day.
            ReminderSettings.objects.create(quiet_start=clock(0), quiet_end=clock(0))
            clinicians = [
                User.objects.create(
                    email=f"doc{i}@load.example",
                    role=Role.CLINICIAN,
                    is_active=True,
                    full_name=f"Dr. Load {i}",
                )
                for i in range(CLINICIANS)
            ]
            patients = Patient.objects.bulk_create(
                Patient(
                    mrn=f"SEED-{i:05d}",
                    given_name=rng.choice(["Ada", "Grace", "Alan", "Mary", "Omar", "Yuki"]),
                    family_name=rng.choice(["Lovelace", "Hopper", "Turing", "Seacole"]),
                    birth_date=date(1950, 1, 1) + timedelta(days=rng.randrange(20_000)),
                    sex="unknown",
                    phone=f"+4915{i:09d}",
                    sms_opt_in=True,
                    facility=facility,
                    assigned_clinician=clinicians[i % CLINICIANS],
                )
                for i in range(PATIENTS)
            )
            farm = farm_services.farm_create(name=f"Farm {slug}", actor=admin)
            fields = [
                farm_services.field_create(
                    farm=farm, name=f"Block {i}", boundary=_square(36.0 + i / 50, -0.3), actor=admin
                )
                for i in range(FIELDS)
            ]
            seeds.append(
                TenantSeed(
                    slug=slug,
                    host=tenant_host(slug),
                    schema=tenant.schema_name,
                    facility_id=str(facility.pk),
                    clinician_ids=[str(c.pk) for c in clinicians],
                    patient_ids=[str(p.pk) for p in patients],
                    field_ids=[str(f.pk) for f in fields],
                )
            )
    activate_public()
    return seeds
