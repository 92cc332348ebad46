"""Demo clinical data for a tenant (``make run``'s acme): two facilities in two time zones, the
tenant's clinical staff granted access, ~200 patients and two weeks of appointments. Idempotent:
running it again adds nothing that is already there."""

from __future__ import annotations

import random
import zoneinfo
from datetime import datetime, time, timedelta
from typing import Any

import phonenumbers
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.roles import Role
from apikit.errors import APIError
from apikit.policy import AccessLevel, container_access_grant
from clinical import services
from clinical.models import Appointment, Facility, Patient, Sex
from tenants.models import Tenant

FACILITIES = (
    # code, name, IANA zone, address, phone, phone region for its patients
    (
        "NORTH",
        "Acme North Clinic",
        "Europe/Berlin",
        "Invalidenstr. 1, 10115 Berlin",
        "+4930901820",
        "DE",
    ),
    (
        "HARBOR",
        "Acme Harbor Clinic",
        "America/New_York",
        "1 Water St, New York, NY 10004",
        "+12125550142",
        "US",
    ),
)
GIVEN = (
    "Ada",
    "Grace",
    "Alan",
    "Mary",
    "Lena",
    "Omar",
    "Yuki",
    "Ravi",
    "Sofia",
    "Jonas",
    "Amara",
    "Noah",
    "Mia",
    "Liam",
    "Zoe",
    "Ibrahim",
    "Chen",
    "Fatima",
    "Lucas",
    "Elif",
)
FAMILY = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Seacole",
    "Schmidt",
    "Haddad",
    "Tanaka",
    "Patel",
    "Rossi",
    "Becker",
    "Okafor",
    "Miller",
    "Nguyen",
    "Garcia",
    "Kowalski",
    "Yilmaz",
    "Wang",
    "Hassan",
    "Silva",
    "Johansson",
)
REASONS = ("Check-up", "Follow-up", "Vaccination", "Blood test", "Consultation", "Wound care")
PATIENTS = 200
DAYS = 14
MORNING_SLOTS = 6  # 09:00-12:00 local, 30 minutes each
MRN_PREFIX = "DEMO-"


def _phone(rng: random.Random, region: str) -> str:
    while True:
        if region == "DE":
            raw = f"+49151{rng.randrange(10**7, 10**8)}"
        else:
            raw = f"+1{rng.choice(['212', '646', '718', '917'])}{rng.randrange(200, 999)}{rng.randrange(1000, 9999)}"
        number = phonenumbers.parse(raw)
        if phonenumbers.is_valid_number(number):
            return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


class Command(BaseCommand):
    help = (
        "Seed demo facilities, staff grants, patients and appointments into a tenant (idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", default="acme", help="tenant slug (default: acme)")
        parser.add_argument("--seed", type=int, default=2026, help="random seed")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}; provision it first.")
        rng = random.Random(options["seed"])  # noqa: S311  (demo data, not secrets)
        with tenant_context(tenant):
            facilities = self._facilities()
            staff = self._grants(facilities)
            created_patients = self._patients(rng, facilities, staff)
            created_appointments = self._appointments(rng, facilities, staff)
        self.stdout.write(
            f"Clinic demo for {tenant.slug}: {len(facilities)} facilities, "
            f"{created_patients} new patients, {created_appointments} new appointments."
        )

    def _facilities(self) -> list[tuple[Facility, str]]:
        rows = []
        for code, name, zone, address, phone, region in FACILITIES:
            facility = Facility.objects.filter(code=code).first() or services.facility_create(
                name=name, code=code, timezone=zone, address=address, phone=phone, actor=None
            )
            rows.append((facility, region))
        return rows

    def _grants(self, facilities: list[tuple[Facility, str]]) -> list[User]:
        """Clinicians and nurses manage every demo facility; reception manages the first one and
        may view the second, so both access levels can be explored."""
        staff = list(
            User.objects.filter(
                is_active=True, role__in=[Role.CLINICIAN, Role.NURSE, Role.RECEPTIONIST]
            ).order_by("email")
        )
        for user in staff:
            for index, (facility, _) in enumerate(facilities):
                level = (
                    AccessLevel.VIEW
                    if user.role == Role.RECEPTIONIST and index > 0
                    else AccessLevel.MANAGE
                )
                container_access_grant(user=user, container=facility, level=level)
        return [user for user in staff if user.role == Role.CLINICIAN]

    @transaction.atomic
    def _patients(
        self, rng: random.Random, facilities: list[tuple[Facility, str]], clinicians: list[User]
    ) -> int:
        existing = set(
            Patient.all_objects.filter(mrn__startswith=MRN_PREFIX).values_list("mrn", flat=True)
        )
        today = timezone.localdate()
        new = []
        for i in range(PATIENTS):
            facility, region = facilities[i % len(facilities)]
            # Draw for every row, so a re-run sees the same sequence and skips by MRN.
            given, family = rng.choice(GIVEN), rng.choice(FAMILY)
            born = today - timedelta(days=rng.randrange(365, 365 * 90))
            sex = rng.choice([Sex.FEMALE, Sex.MALE, Sex.FEMALE, Sex.MALE, Sex.OTHER])
            phone = _phone(rng, region)
            opt_in = rng.random() < 0.7
            mrn = f"{MRN_PREFIX}{i + 1:05d}"
            if mrn in existing:
                continue
            new.append(
                Patient(
                    mrn=mrn,
                    given_name=given,
                    family_name=family,
                    birth_date=born,
                    sex=sex,
                    phone=phone,
                    sms_opt_in=opt_in,
                    facility=facility,
                    assigned_clinician=clinicians[i % len(clinicians)] if clinicians else None,
                )
            )
        Patient.objects.bulk_create(new)
        return len(new)

    def _appointments(
        self, rng: random.Random, facilities: list[tuple[Facility, str]], clinicians: list[User]
    ) -> int:
        if not clinicians:
            return 0
        if Appointment.objects.filter(
            patient__mrn__startswith=MRN_PREFIX, starts_at__gte=timezone.now()
        ).exists():
            return 0  # the diary is already seeded; a re-run must not fill its gaps
        created = 0
        start_day = timezone.localdate() + timedelta(days=1)
        for offset in range(DAYS):
            day = start_day + timedelta(days=offset)
            if day.weekday() >= 5:
                continue
            for clinician in clinicians:
                for facility, _ in facilities:
                    patients = list(
                        Patient.objects.filter(facility=facility, mrn__startswith=MRN_PREFIX)
                        .order_by("mrn")
                        .values_list("pk", flat=True)
                    )
                    zone = zoneinfo.ZoneInfo(facility.timezone)
                    for slot in range(MORNING_SLOTS):
                        if rng.random() < 0.3:
                            continue  # leave some gaps in the diary
                        starts = datetime.combine(day, time(9, 0), tzinfo=zone) + timedelta(
                            minutes=30 * slot
                        )
                        try:
                            services.appointment_create(
                                patient=Patient.objects.get(pk=rng.choice(patients)),
                                clinician=clinician,
                                facility=facility,
                                starts_at=starts,
                                ends_at=starts + timedelta(minutes=30),
                                reason=rng.choice(REASONS),
                                actor=None,
                            )
                            created += 1
                        except APIError:
                            continue  # the slot is taken (the constraint decides)
        return created
