"""Demo clinical data for a tenant (``make run``'s acme) that reads like a real clinic: two
facilities in two time zones, the tenant's clinical staff granted access, 200 patients whose names
fit their facility's country and their sex, today's board at each facility with every appointment
status, and two weeks of weekday-morning appointments ahead.

Deterministic and idempotent. Every patient is drawn from its own seeded generator (``--seed`` and
its index), every diary day from one seeded by the facility, the clinician's email and the date,
so what a run creates never depends on what an earlier run left. A re-run adds nothing that is
already there: patients are keyed by MRN, a diary day is skipped when it holds any demo
appointment. A run on a later day adds that day's board and the days that came into range.

Names are data (``seed_clinic_demo.json``), not Faker: the command runs in production images too.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
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
from clinical.models import Appointment, AppointmentStatus, Facility, Patient, Sex
from clinical.rules import phone_is_mobile
from tenants.models import Tenant

DATA_FILE = Path(__file__).with_suffix(".json")

FACILITIES = (
    # code, name, IANA zone, address, phone, phone region (and names) of its patients
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
PATIENTS = 200
DAYS = 14
SLOT = dt.timedelta(minutes=30)
# Mornings only (local time): 08:30-12:30 in Berlin and in New York never overlap in UTC, so one
# clinician serving both facilities is never double booked.
BOARD_START = dt.time(8, 30)
# Today's board, one appointment per slot: every status once at least, in the order a morning
# leaves them (the earliest patients are done, one is with the clinician, the rest are to come).
BOARD = (
    AppointmentStatus.COMPLETED,
    AppointmentStatus.COMPLETED,
    AppointmentStatus.NO_SHOW,
    AppointmentStatus.COMPLETED,
    AppointmentStatus.CHECKED_IN,
    AppointmentStatus.CANCELLED,
    AppointmentStatus.SCHEDULED,
    AppointmentStatus.SCHEDULED,
)
# The service transitions that lead from scheduled to each status (domain rules apply).
_TRANSITIONS: dict[str, tuple[str, ...]] = {
    AppointmentStatus.SCHEDULED: (),
    AppointmentStatus.CHECKED_IN: ("check_in",),
    AppointmentStatus.COMPLETED: ("check_in", "complete"),
    AppointmentStatus.CANCELLED: ("cancel",),
    AppointmentStatus.NO_SHOW: ("no_show",),
}
AHEAD_SLOTS = 6  # 09:00-12:00 local on the days ahead, some left free
MRN_PREFIX = "DEMO-"
# Birth dates in a fixed range (not relative to today): the same patients on any day.
BORN_FROM, BORN_TO = dt.date(1936, 1, 1), dt.date(2024, 12, 31)
# Of 100 patients: 48 female, 48 male, 2 other, 2 unknown.
SEX_WEIGHTS = ((Sex.FEMALE, 48), (Sex.MALE, 48), (Sex.OTHER, 2), (Sex.UNKNOWN, 2))


@cache
def demo_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    return data


def given_names(*, sex: str) -> frozenset[str]:
    """Every given name the demo uses for ``sex`` (neutral names for other / unknown)."""
    key = {Sex.FEMALE: "female", Sex.MALE: "male"}.get(Sex(sex), "neutral")
    return frozenset(name for region in demo_data()["regions"].values() for name in region[key])


def name_fits_sex(*, given_name: str, sex: str) -> bool:
    """Whether a demo patient's name agrees with its sex. Anyone may carry a neutral name; a
    female or male name fits that sex only."""
    if given_name in given_names(sex=Sex.OTHER):
        return True
    if sex in (Sex.FEMALE, Sex.MALE):
        return given_name in given_names(sex=sex)
    return given_name not in given_names(sex=Sex.FEMALE) | given_names(sex=Sex.MALE)


@dataclass(frozen=True)
class PatientSpec:
    mrn: str
    given_name: str
    family_name: str
    sex: str
    birth_date: dt.date
    phone: str
    sms_opt_in: bool
    facility_index: int


def patient_specs(*, seed: int) -> list[PatientSpec]:
    """The demo patients, a pure function of ``seed``."""
    specs = []
    sexes = [sex for sex, _ in SEX_WEIGHTS]
    weights = [weight for _, weight in SEX_WEIGHTS]
    for index in range(PATIENTS):
        facility_index = index % len(FACILITIES)
        region = FACILITIES[facility_index][5]
        names = demo_data()["regions"][region]
        rng = random.Random(f"{seed}-patient-{index}")  # noqa: S311  (demo data, not secrets)
        sex = rng.choices(sexes, weights)[0]
        key = {Sex.FEMALE: "female", Sex.MALE: "male"}.get(sex, "neutral")
        phone = _phone(rng, region)
        specs.append(
            PatientSpec(
                mrn=f"{MRN_PREFIX}{index + 1:05d}",
                given_name=rng.choice(names[key]),
                family_name=rng.choice(names["family"]),
                sex=sex,
                birth_date=BORN_FROM + dt.timedelta(days=rng.randrange((BORN_TO - BORN_FROM).days)),
                phone=phone,
                sms_opt_in=rng.random() < 0.7,
                facility_index=facility_index,
            )
        )
    return specs


def _phone(rng: random.Random, region: str) -> str:
    while True:
        if region == "DE":
            raw = f"+49151{rng.randrange(10**7, 10**8)}"
        else:
            area = rng.choice(["212", "646", "718", "917"])
            raw = f"+1{area}{rng.randrange(200, 999)}{rng.randrange(1000, 9999)}"
        number = phonenumbers.parse(raw)
        if phonenumbers.is_valid_number(number):
            return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def local_today(facility: Facility) -> dt.date:
    return timezone.now().astimezone(zoneinfo.ZoneInfo(facility.timezone)).date()


class Command(BaseCommand):
    help = (
        "Seed demo facilities, staff grants, patients, today's board and two weeks of "
        "appointments into a tenant (deterministic, idempotent)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", default="acme", help="tenant slug (default: acme)")
        parser.add_argument("--seed", type=int, default=2026, help="random seed")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"], is_template=False).first()
        if tenant is None:
            raise CommandError(f"No tenant {options['tenant']!r}; provision it first.")
        seed = options["seed"]
        with tenant_context(tenant):
            facilities = self._facilities()
            staff = self._grants(facilities)
            clinicians = [user for user in staff if user.role == Role.CLINICIAN]
            serving = _serving(facilities=facilities, clinicians=clinicians)
            created, renamed = self._patients(seed, facilities, serving)
            appointments = 0
            for facility, facility_clinicians in zip(facilities, serving, strict=True):
                today = local_today(facility)
                for clinician in facility_clinicians:
                    appointments += self._board(seed, facility, clinician, today)
                    for offset in range(1, DAYS + 1):
                        day = today + dt.timedelta(days=offset)
                        if day.weekday() < 5:
                            appointments += self._diary_day(seed, facility, clinician, day)
        self.stdout.write(
            f"Clinic demo for {tenant.slug}: {len(facilities)} facilities, "
            f"{created} new patients ({renamed} renamed to fit their sex), "
            f"{appointments} new appointments, today's board at "
            + ", ".join(f"{f.code} ({f.timezone}, {local_today(f)})" for f in facilities)
            + "."
        )

    def _facilities(self) -> list[Facility]:
        rows = []
        for code, name, zone, address, phone, _ in FACILITIES:
            facility = Facility.objects.filter(code=code).first() or services.facility_create(
                name=name, code=code, timezone=zone, address=address, phone=phone, actor=None
            )
            rows.append(facility)
        return rows

    def _grants(self, facilities: list[Facility]) -> list[User]:
        """Clinicians and nurses manage every demo facility; reception manages the first one and
        may view the second, so both access levels can be explored."""
        staff = list(
            User.objects.filter(
                is_active=True, role__in=[Role.CLINICIAN, Role.NURSE, Role.RECEPTIONIST]
            ).order_by("email")
        )
        for user in staff:
            for index, facility in enumerate(facilities):
                level = (
                    AccessLevel.VIEW
                    if user.role == Role.RECEPTIONIST and index > 0
                    else AccessLevel.MANAGE
                )
                container_access_grant(user=user, container=facility, level=level)
        return staff

    @transaction.atomic
    def _patients(
        self, seed: int, facilities: list[Facility], serving: list[list[User]]
    ) -> tuple[int, int]:
        """Creates the missing demo patients; renames, through the service, a demo patient an
        older seed gave a name of the other sex (a name the demo knows, for the wrong sex: a name
        someone typed in is left alone)."""
        existing = {
            patient.mrn: patient
            for patient in Patient.all_objects.filter(mrn__startswith=MRN_PREFIX)
        }
        known = given_names(sex=Sex.FEMALE) | given_names(sex=Sex.MALE)
        new, renamed = [], 0
        for spec in patient_specs(seed=seed):
            current = existing.get(spec.mrn)
            if current is not None:
                if current.given_name in known and not name_fits_sex(
                    given_name=current.given_name, sex=current.sex
                ):
                    services.patient_update(
                        patient=current,
                        expected_version=current.version,
                        changes={
                            "given_name": spec.given_name,
                            "family_name": spec.family_name,
                            "sex": spec.sex,
                        },
                        actor=None,
                    )
                    renamed += 1
                continue
            clinicians = serving[spec.facility_index]
            new.append(
                Patient(
                    mrn=spec.mrn,
                    given_name=spec.given_name,
                    family_name=spec.family_name,
                    birth_date=spec.birth_date,
                    sex=spec.sex,
                    phone=spec.phone,
                    phone_is_mobile=phone_is_mobile(phone=spec.phone),
                    sms_opt_in=spec.sms_opt_in,
                    facility=facilities[spec.facility_index],
                    assigned_clinician=clinicians[int(spec.mrn[-5:]) % len(clinicians)]
                    if clinicians
                    else None,
                )
            )
        Patient.objects.bulk_create(new)
        return len(new), renamed

    def _day_taken(self, facility: Facility, clinician: User, day: dt.date) -> bool:
        zone = zoneinfo.ZoneInfo(facility.timezone)
        start = dt.datetime.combine(day, dt.time(0), tzinfo=zone)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), tzinfo=zone)
        return Appointment.all_objects.filter(
            facility=facility,
            clinician=clinician,
            patient__mrn__startswith=MRN_PREFIX,
            starts_at__gte=start,
            starts_at__lt=end,
        ).exists()

    def _day_patients(self, rng: random.Random, facility: Facility, count: int) -> list[Patient]:
        """Distinct patients of the facility: nobody is booked twice on one morning."""
        patients = list(
            Patient.objects.filter(facility=facility, mrn__startswith=MRN_PREFIX).order_by("mrn")
        )
        return rng.sample(patients, k=min(count, len(patients)))

    @transaction.atomic
    def _board(self, seed: int, facility: Facility, clinician: User, day: dt.date) -> int:
        """Today's board: one appointment per slot, each taken to its status by the services."""
        if self._day_taken(facility, clinician, day):
            return 0
        rng = _day_rng(seed, facility, clinician, day)
        zone = zoneinfo.ZoneInfo(facility.timezone)
        first = dt.datetime.combine(day, BOARD_START, tzinfo=zone)
        patients = self._day_patients(rng, facility, len(BOARD))
        created = 0
        for slot, (status, patient) in enumerate(zip(BOARD, patients, strict=False)):
            starts = first + slot * SLOT
            appointment = self._book(rng, facility, clinician, patient, starts)
            if appointment is None:
                continue
            for action in _TRANSITIONS[status]:
                appointment = services.appointment_transition(
                    appointment=appointment,
                    action=action,
                    expected_version=appointment.version,
                    actor=None,
                    reason=rng.choice(demo_data()["cancellation_reasons"])
                    if action == "cancel"
                    else "",
                )
            created += 1
        return created

    @transaction.atomic
    def _diary_day(self, seed: int, facility: Facility, clinician: User, day: dt.date) -> int:
        if self._day_taken(facility, clinician, day):
            return 0
        rng = _day_rng(seed, facility, clinician, day)
        zone = zoneinfo.ZoneInfo(facility.timezone)
        first = dt.datetime.combine(day, dt.time(9, 0), tzinfo=zone)
        patients = self._day_patients(rng, facility, AHEAD_SLOTS)
        created = 0
        for slot, patient in enumerate(patients):
            if rng.random() < 0.3:
                continue  # leave some gaps in the diary
            if self._book(rng, facility, clinician, patient, first + slot * SLOT) is not None:
                created += 1
        return created

    def _book(
        self,
        rng: random.Random,
        facility: Facility,
        clinician: User,
        patient: Patient,
        starts: dt.datetime,
    ) -> Appointment | None:
        reason = rng.choice(demo_data()["visit_reasons"])
        try:
            return services.appointment_create(
                patient=patient,
                clinician=clinician,
                facility=facility,
                starts_at=starts,
                ends_at=starts + SLOT,
                reason=reason,
                actor=None,
            )
        except APIError:
            return None  # the slot is taken by someone's own booking (the constraint decides)


def _serving(*, facilities: Sequence[Facility], clinicians: Sequence[User]) -> list[list[User]]:
    """Which clinicians hold each facility's diary: one facility each when there are enough of
    them (as in the demo tenant), otherwise every clinician serves every facility."""
    if len(clinicians) >= len(facilities):
        return [
            [c for i, c in enumerate(clinicians) if i % len(facilities) == index]
            for index in range(len(facilities))
        ]
    return [list(clinicians) for _ in facilities]


def _day_rng(seed: int, facility: Facility, clinician: User, day: dt.date) -> random.Random:
    # Keyed by the clinician's email, not id: ids are random, the demo's emails are fixed.
    return random.Random(f"{seed}-{facility.code}-{clinician.email}-{day.isoformat()}")  # noqa: S311
