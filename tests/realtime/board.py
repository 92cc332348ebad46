"""Writes for the real-time tests, through clinical's services (as the API makes them), committed
in one side's schema."""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

from accounts.models import User
from accounts.roles import Role
from clinical.models import Appointment, Facility, Patient
from clinical.services import appointment_create, appointment_transition, appointment_update
from tests.realtime.conftest import in_schema
from tests.security.world import SHARED, USER_IDS

# Every test books its own clinician slot (no double booking): 2031-05-01 onwards, one hour each.
DAY = dt.date(2031, 5, 1)
_slots = itertools.count()


def next_start() -> dt.datetime:
    n = next(_slots)
    # Within Berlin's day DAY (UTC+2 in May): 06:00 UTC onwards, one hour apart, 12 a day.
    day = DAY + dt.timedelta(days=n // 12)
    return dt.datetime.combine(day, dt.time(6 + n % 12), tzinfo=dt.UTC)


def board_params(day: dt.date, days: int = 1) -> dict[str, str]:
    """An ``appointments`` subscription's params: the shared facility's board, ``days`` from
    ``day``."""
    last = day + dt.timedelta(days=days - 1)
    facility = str(SHARED["clinical.facility"])
    return {"facility": facility, "from": day.isoformat(), "to": last.isoformat()}


def book(schema: str, *, starts_at: dt.datetime, facility: str = "clinical.facility") -> str:
    def work() -> str:
        admin = User.objects.get(pk=USER_IDS[Role.TENANT_ADMIN])
        appointment = appointment_create(
            patient=Patient.objects.get(pk=SHARED["clinical.patient"]),
            clinician=User.objects.get(pk=USER_IDS[Role.CLINICIAN]),
            facility=Facility.objects.get(pk=SHARED[facility]),
            starts_at=starts_at,
            ends_at=starts_at + dt.timedelta(minutes=30),
            reason="realtime test",
            actor=admin,
        )
        return str(appointment.pk)

    return in_schema(schema, work)


def transition(schema: str, appointment_id: str, action: str) -> None:
    def work() -> None:
        appointment = Appointment.objects.get(pk=appointment_id)
        appointment_transition(
            appointment=appointment,
            action=action,
            expected_version=appointment.version,
            actor=User.objects.get(pk=USER_IDS[Role.TENANT_ADMIN]),
        )

    in_schema(schema, work)


def move(schema: str, appointment_id: str, **changes: Any) -> None:
    def work() -> None:
        appointment = Appointment.objects.get(pk=appointment_id)
        if "starts_at" in changes and "ends_at" not in changes:
            changes["ends_at"] = changes["starts_at"] + dt.timedelta(minutes=30)
        appointment_update(
            appointment=appointment,
            expected_version=appointment.version,
            changes=changes,
            actor=User.objects.get(pk=USER_IDS[Role.TENANT_ADMIN]),
        )

    in_schema(schema, work)
