"""The clinic demo seed: facilities in two zones, staff grants, patients with valid E.164 phones,
appointments without double bookings, and a second run that adds nothing."""

from __future__ import annotations

import phonenumbers
from django.core.management import call_command
from django_tenants.utils import tenant_context

from accounts.models import User
from apikit.policy import AccessLevel, visible_containers
from clinical.models import Appointment, Facility, Patient
from tests.conftest import CLINICIAN_ID, TenantWorld


def test_seed_is_complete_and_idempotent(alpha: TenantWorld) -> None:
    call_command("seed_clinic_demo", tenant="alpha")
    with tenant_context(alpha.tenant):
        counts = (Facility.objects.count(), Patient.objects.count(), Appointment.objects.count())
        assert counts[0] == 2
        assert counts[1] == 200
        assert counts[2] > 20
        assert {f.timezone for f in Facility.objects.all()} == {"Europe/Berlin", "America/New_York"}
        for phone in Patient.objects.values_list("phone", flat=True):
            assert phonenumbers.is_valid_number(phonenumbers.parse(phone)), phone
        clinician = User.objects.get(pk=CLINICIAN_ID)
        managed = visible_containers(
            user=clinician, container_model=Facility, level=AccessLevel.MANAGE
        )
        assert managed.count() == 2
    call_command("seed_clinic_demo", tenant="alpha")
    with tenant_context(alpha.tenant):
        again = (Facility.objects.count(), Patient.objects.count(), Appointment.objects.count())
    assert again == counts
