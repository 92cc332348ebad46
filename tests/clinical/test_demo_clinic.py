"""The clinic demo (``seed_clinic_demo``): a clinic that reads like one, built the same way every
time, never twice, within the model's validation and the domain's rules, in one tenant only.

alpha and beta are the shared colliding tenants (the same clinician id and email in both)."""

from __future__ import annotations

import io
import itertools
import json
import zoneinfo
from typing import Any

import phonenumbers
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create
from apikit.policy import AccessLevel, visible_containers
from clinical import rules
from clinical.management.commands.seed_clinic_demo import (
    BOARD,
    DATA_FILE,
    MRN_PREFIX,
    PATIENTS,
    given_names,
    local_today,
    name_fits_sex,
    patient_specs,
)
from clinical.models import Appointment, AppointmentStatus, Facility, Patient, Sex
from tests.conftest import CLINICIAN_ID, TenantWorld

REGIONS = {"NORTH": "DE", "HARBOR": "US"}
CLINICIAN_EMAIL = "clinician@example.com"


def _seed(world: TenantWorld, *args: str) -> str:
    out = io.StringIO()
    call_command("seed_clinic_demo", "--tenant", world.tenant.slug, *args, stdout=out)
    return out.getvalue()


def _snapshot() -> dict[str, Any]:
    """What the demo holds, without the random row ids and the creation times."""
    return {
        "facilities": sorted(Facility.objects.values_list("code", "name", "timezone", "phone")),
        "patients": sorted(
            Patient.objects.values_list(
                "mrn",
                "given_name",
                "family_name",
                "sex",
                "birth_date",
                "phone",
                "sms_opt_in",
                "facility__code",
                "assigned_clinician__email",
            )
        ),
        "appointments": sorted(
            Appointment.objects.values_list(
                "patient__mrn",
                "clinician__email",
                "facility__code",
                "starts_at",
                "ends_at",
                "status",
                "reason",
                "cancellation_reason",
            )
        ),
    }


def test_the_name_lists_are_data_and_never_give_one_name_to_two_sexes() -> None:
    data = json.loads(DATA_FILE.read_text(encoding="utf-8"))
    assert set(data["regions"]) == set(REGIONS.values())
    female, male = given_names(sex=Sex.FEMALE), given_names(sex=Sex.MALE)
    neutral = given_names(sex=Sex.OTHER)
    assert given_names(sex=Sex.UNKNOWN) == neutral
    assert not female & male
    assert not (female | male) & neutral
    assert name_fits_sex(given_name="Anna", sex=Sex.FEMALE)
    assert not name_fits_sex(given_name="Anna", sex=Sex.MALE)
    assert not name_fits_sex(given_name="Anna", sex=Sex.OTHER)
    assert name_fits_sex(given_name="Alex", sex=Sex.MALE)
    assert name_fits_sex(given_name="Xaver-Someone-Typed", sex=Sex.UNKNOWN)


def test_patients_are_a_pure_function_of_the_seed() -> None:
    first = patient_specs(seed=7)
    assert first == patient_specs(seed=7)
    assert first != patient_specs(seed=8)
    assert len(first) == PATIENTS
    assert len({spec.mrn for spec in first}) == PATIENTS
    assert {spec.sex for spec in first} == set(Sex.values)
    for spec in first:
        assert name_fits_sex(given_name=spec.given_name, sex=spec.sex), spec
        assert spec.birth_date <= timezone.localdate()


def test_seed_is_realistic_valid_and_idempotent(alpha: TenantWorld, beta: TenantWorld) -> None:
    with tenant_context(beta.tenant):
        beta_before = _snapshot()
    out = _seed(alpha)
    assert "Clinic demo for alpha: 2 facilities, 200 new patients" in out
    with tenant_context(alpha.tenant):
        first = _snapshot()
        assert len(first["facilities"]) == 2
        assert len(first["patients"]) == PATIENTS
        data = json.loads(DATA_FILE.read_text(encoding="utf-8"))["regions"]
        for patient in Patient.objects.select_related("facility"):
            patient.full_clean()
            names = data[REGIONS[patient.facility.code]]
            assert patient.family_name in names["family"], patient
            assert name_fits_sex(given_name=patient.given_name, sex=patient.sex), patient
            assert phonenumbers.is_valid_number(phonenumbers.parse(patient.phone))
            assert rules.phone_normalise(phone=patient.phone) == patient.phone
            # The seed's bulk_create stores the phone's MOBILE verdict as the services do.
            assert patient.phone_is_mobile is rules.phone_is_mobile(phone=patient.phone)
            rules.mrn_check(mrn=patient.mrn)
            rules.birth_date_check(birth_date=patient.birth_date, today=timezone.localdate())
            rules.sms_consent_check(sms_opt_in=patient.sms_opt_in, phone=patient.phone)
        for facility in Facility.objects.all():
            facility.full_clean()
        _check_appointments()
        _check_boards()
        clinician = User.objects.get(pk=CLINICIAN_ID)
        managed = visible_containers(
            user=clinician, container_model=Facility, level=AccessLevel.MANAGE
        )
        assert managed.count() == 2

    again = _seed(alpha)
    assert "0 new patients (0 renamed to fit their sex), 0 new appointments" in again
    with tenant_context(alpha.tenant):
        assert _snapshot() == first
    # The colliding tenant (same clinician id and email) got nothing.
    with tenant_context(beta.tenant):
        assert _snapshot() == beta_before
        assert not visible_containers(
            user=User.objects.get(pk=CLINICIAN_ID), container_model=Facility
        ).exists()


def _check_appointments() -> None:
    """Model validation, the domain's rules, and no double booking (checked here in Python, not
    only by the exclusion constraint that refused any)."""
    appointments = list(Appointment.objects.select_related("patient", "clinician"))
    assert len(appointments) > 50
    for appointment in appointments:
        appointment.full_clean()
        rules.appointment_times_check(starts_at=appointment.starts_at, ends_at=appointment.ends_at)
        rules.appointment_facility_check(
            facility_id=appointment.facility_id, patient_facility_id=appointment.patient.facility_id
        )
        rules.clinician_check(
            role=appointment.clinician.role, is_active=appointment.clinician.is_active
        )
        status = appointment.status
        assert (appointment.checked_in_at is not None) == (
            status in (AppointmentStatus.CHECKED_IN, AppointmentStatus.COMPLETED)
        )
        assert (appointment.completed_at is not None) == (status == AppointmentStatus.COMPLETED)
        assert (appointment.cancelled_at is not None) == (status == AppointmentStatus.CANCELLED)
        assert bool(appointment.cancellation_reason) == (status == AppointmentStatus.CANCELLED)
    booked: dict[Any, list[Appointment]] = {}
    for appointment in appointments:
        if appointment.status != AppointmentStatus.CANCELLED:
            booked.setdefault(appointment.clinician_id, []).append(appointment)
    for diary in booked.values():
        diary.sort(key=lambda a: a.starts_at)
        for earlier, later in itertools.pairwise(diary):
            assert earlier.ends_at <= later.starts_at, (earlier, later)
    # Nobody is booked twice in one morning.
    days = [(a.patient_id, a.starts_at.date()) for a in appointments]
    assert len(days) == len(set(days))


def _check_boards() -> None:
    """Today, in each facility's own time zone, every status is on the board."""
    for facility in Facility.objects.all():
        today = local_today(facility)
        on_board = [
            appointment
            for appointment in Appointment.objects.filter(facility=facility)
            if appointment.starts_at.astimezone(zoneinfo.ZoneInfo(facility.timezone)).date()
            == today
        ]
        assert sorted(a.status for a in on_board) == sorted(BOARD), facility
        assert {a.status for a in on_board} == set(AppointmentStatus.values)


def test_seed_is_deterministic_across_tenants_and_runs(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    """The same seed gives the same clinic in two tenants that share the clinician's email
    (row ids differ, being random); another seed gives other patients."""
    _seed(alpha)
    _seed(beta)
    with tenant_context(alpha.tenant):
        in_alpha = _snapshot()
    with tenant_context(beta.tenant):
        assert _snapshot() == in_alpha
    with tenant_context(beta.tenant):
        Appointment.all_objects.all().delete()
        Patient.all_objects.all().delete()
    _seed(beta, "--seed", "1")
    with tenant_context(beta.tenant):
        other = _snapshot()
    assert other["patients"] != in_alpha["patients"]
    assert other["facilities"] == in_alpha["facilities"]


def test_a_re_run_renames_patients_an_older_seed_gave_the_wrong_sex(alpha: TenantWorld) -> None:
    _seed(alpha)
    spec = next(spec for spec in patient_specs(seed=2026) if spec.sex == Sex.FEMALE)
    with tenant_context(alpha.tenant):
        # What the old seed produced: a name from its mixed list, drawn apart from the sex.
        Patient.all_objects.filter(mrn=spec.mrn).update(given_name="Alan", family_name="Turing")
        Patient.all_objects.filter(mrn=f"{MRN_PREFIX}00002").update(
            given_name="Xaver-Typed-In", sex=Sex.FEMALE
        )
        version = Patient.objects.get(mrn=spec.mrn).version
    out = _seed(alpha)
    assert "0 new patients (1 renamed to fit their sex)" in out
    with tenant_context(alpha.tenant):
        fixed = Patient.objects.get(mrn=spec.mrn)
        assert (fixed.given_name, fixed.family_name, fixed.sex) == (
            spec.given_name,
            spec.family_name,
            Sex.FEMALE,
        )
        assert fixed.version == version + 1  # through the service, like any other edit
        assert Patient.objects.get(mrn=f"{MRN_PREFIX}00002").given_name == "Xaver-Typed-In"


def test_two_clinicians_hold_one_facility_diary_each(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        second = user_create(
            email="clinician2@example.com",
            role=Role.CLINICIAN,
            password=None,
            is_active=True,
            full_name="Marcus Reed",
        )
    _seed(alpha)
    with tenant_context(alpha.tenant):
        by_clinician = {
            email: set(
                Appointment.objects.filter(clinician__email=email).values_list(
                    "facility__code", flat=True
                )
            )
            for email in (CLINICIAN_EMAIL, second.email)
        }
        assert by_clinician == {CLINICIAN_EMAIL: {"HARBOR"}, second.email: {"NORTH"}}
        # Patients are assigned to the clinician of their facility.
        for patient in Patient.objects.select_related("facility", "assigned_clinician"):
            expected = second.email if patient.facility.code == "NORTH" else CLINICIAN_EMAIL
            assert patient.assigned_clinician is not None
            assert patient.assigned_clinician.email == expected


def test_unknown_tenant_is_a_clear_error(db: None) -> None:
    with pytest.raises(CommandError, match="No tenant 'nowhere'"):
        call_command("seed_clinic_demo", "--tenant", "nowhere")
