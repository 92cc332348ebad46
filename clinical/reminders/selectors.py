"""Reads over the reminder outbox and the tenant's reminder settings."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone
from django_tenants.utils import quote_schema_name

from clinical.models import ReminderMessage, ReminderSettings
from tenants.fanout import schema_walk

TABLE = ReminderMessage._meta.db_table
# The version of settings that were never saved (the defaults).
SETTINGS_NEVER_SAVED = 0


# {table} is a schema name quoted by quote_schema_name plus a constant table name.
_DUE_SQL = """
SELECT EXISTS (
    SELECT 1 FROM {table}
    WHERE state IN ('pending', 'deferred') AND send_after <= %s
    LIMIT 1 FOR UPDATE SKIP LOCKED
) OR EXISTS (
    SELECT 1 FROM {table}
    WHERE (state = 'sending' AND claimed_at < %s)
       OR (state = 'unknown' AND claimed_at < %s AND reason <> 'unverifiable')
    LIMIT 1 FOR UPDATE SKIP LOCKED
)
"""


def schemas_with_due_reminders(*, schemas: Sequence[str]) -> list[str]:
    """Which of these tenant schemas hold reminders that are due (or stuck) and not locked by a
    running dispatcher. One query per schema, served by the partial indexes on ``send_after``
    and ``claimed_at``; ``SKIP LOCKED`` ignores rows a worker is claiming right now."""
    now = timezone.now()
    stuck = now - timedelta(seconds=settings.REMINDER_STUCK_AFTER_SECONDS)
    unknown = now - timedelta(seconds=settings.REMINDER_RECONCILE_AFTER_SECONDS)
    found: list[str] = []
    # Each schema's table stays in the backend's caches: schema_walk closes the connection every
    # DB_MAX_SCHEMAS_PER_CONNECTION schemas (a cursor per schema, so none is open at a close).
    for schema in schema_walk(items=schemas):
        table = f"{quote_schema_name(schema)}.{TABLE}"
        with connection.cursor() as cursor:
            cursor.execute(_DUE_SQL.format(table=table), [now, stuck, unknown])
            if cursor.fetchone()[0]:
                found.append(schema)
    return found


def reminder_list() -> QuerySet[ReminderMessage]:
    return ReminderMessage.objects.select_related("appointment")


def reminder_filter(
    queryset: QuerySet[ReminderMessage],
    *,
    state: str | None = None,
    kind: str | None = None,
    reason: str | None = None,
    appointment_id: uuid.UUID | None = None,
    patient_id: uuid.UUID | None = None,
    facility_id: uuid.UUID | None = None,
    due_after: datetime | None = None,
    due_before: datetime | None = None,
) -> QuerySet[ReminderMessage]:
    if state:
        queryset = queryset.filter(state=state)
    if kind:
        queryset = queryset.filter(kind=kind)
    if reason:
        queryset = queryset.filter(reason=reason)
    if appointment_id:
        queryset = queryset.filter(appointment_id=appointment_id)
    if patient_id:
        queryset = queryset.filter(appointment__patient_id=patient_id)
    if facility_id:
        queryset = queryset.filter(appointment__facility_id=facility_id)
    if due_after:
        queryset = queryset.filter(due_at__gte=due_after)
    if due_before:
        queryset = queryset.filter(due_at__lt=due_before)
    return queryset


def reminders_for_appointment(*, appointment_id: uuid.UUID) -> list[ReminderMessage]:
    return list(ReminderMessage.objects.filter(appointment_id=appointment_id).order_by("due_at"))


def reminder_settings_get() -> ReminderSettings:
    """The tenant's reminder settings (one query). A tenant that never saved any gets the
    defaults, unsaved, at ``version`` 0: the API shows them with ETag ``W/"0"``, and the first
    save (which creates the row at version 1) may name that version."""
    row = ReminderSettings.objects.filter(singleton=1).first()
    return row if row is not None else ReminderSettings(version=SETTINGS_NEVER_SAVED)
