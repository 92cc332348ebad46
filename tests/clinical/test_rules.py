"""clinical.rules: the clinical rules the services, serializers and sync push share."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import override_settings

from apikit.rules import RuleError
from clinical import rules

START = dt.datetime(2031, 3, 3, 9, 0, tzinfo=dt.UTC)


def _broken(rule: Callable[..., object], **kwargs: object) -> RuleError:
    """The error ``rule`` raises for ``kwargs``."""
    with pytest.raises(RuleError) as caught:
        rule(**kwargs)
    return caught.value


def test_phone_numbers_are_e164_or_refused() -> None:
    assert rules.phone_normalise(phone=" +49 151 12345678 ") == "+4915112345678"
    assert rules.phone_normalise(phone="") == ""
    error = _broken(rules.phone_normalise, phone="12")
    assert (error.field, error.message) == ("phone", rules.PHONE_INVALID)
    with override_settings(CLINICAL_DEFAULT_PHONE_REGION="DE"):
        assert rules.phone_normalise(phone="0151 12345678") == "+4915112345678"


def test_patient_rules() -> None:
    rules.mrn_check(mrn="MRN-1/a.b_c")
    assert _broken(rules.mrn_check, mrn="bad mrn!").field == "mrn"
    today = dt.date(2026, 5, 1)
    rules.birth_date_check(birth_date=today, today=today)
    assert (
        _broken(rules.birth_date_check, birth_date=today + dt.timedelta(1), today=today).message
        == rules.BIRTH_IN_FUTURE
    )
    rules.sms_consent_check(sms_opt_in=True, phone="+4915112345678")
    rules.sms_consent_check(sms_opt_in=False, phone="")
    assert _broken(rules.sms_consent_check, sms_opt_in=True, phone="").field == "sms_opt_in"


def test_only_active_clinicians() -> None:
    rules.clinician_check(role="clinician", is_active=True)
    for role, active in (("clinician", False), ("nurse", True), (None, False)):
        error = _broken(rules.clinician_check, role=role, is_active=active, field="clinician_id")
        assert (error.field, error.code) == ("clinician_id", "dependency_missing")


def test_appointment_times() -> None:
    rules.appointment_times_check(starts_at=START, ends_at=START + dt.timedelta(hours=12))
    assert _broken(rules.appointment_times_check, starts_at=START, ends_at=START).message == (
        rules.APPOINTMENT_ENDS_BEFORE_START
    )
    too_long = _broken(
        rules.appointment_times_check, starts_at=START, ends_at=START + dt.timedelta(hours=12.01)
    )
    assert (too_long.field, too_long.message) == (
        "ends_at",
        "An appointment may last at most 12 hours.",
    )


def test_appointment_moves_and_status_by_push() -> None:
    rules.appointment_move_check(status="scheduled", moved=["starts_at"])
    rules.appointment_move_check(status="completed", moved=[])
    error = _broken(rules.appointment_move_check, status="completed", moved=["ends_at", "x"])
    assert (error.field, error.code) == ("ends_at", "invalid_transition")
    assert (
        _broken(rules.appointment_facility_check, facility_id="f1", patient_facility_id="f2").field
        == "facility"
    )
    assert rules.appointment_push_cancels(current="scheduled", wanted="scheduled") is False
    assert rules.appointment_push_cancels(current="scheduled", wanted="cancelled") is True
    refused = _broken(rules.appointment_push_cancels, current="scheduled", wanted="checked_in")
    assert (refused.field, refused.code) == ("status", "invalid_transition")
    assert _broken(rules.appointment_push_cancels, current="completed", wanted="cancelled")
