"""Appointment reminders (SMS): rules, the outbox, delivery. docs/reminders.md explains it."""

from clinical.reminders.services import (
    DispatchReport,
    reminder_receipt_apply,
    reminders_dispatch,
    reminders_sync_for_appointments,
)

__all__ = [
    "DispatchReport",
    "reminder_receipt_apply",
    "reminders_dispatch",
    "reminders_sync_for_appointments",
]
