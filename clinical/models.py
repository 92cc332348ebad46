"""Clinical domain models: facilities, patients, appointments, prescriptions, documents.

Every model is a ``TenantModel`` (UUIDv7 key, timestamps, created_by / updated_by, ``version``
for optimistic locking, soft delete). A Facility is the container that access is granted on; every
other row is scoped through the facility it belongs to.
"""

from __future__ import annotations

import zoneinfo
from datetime import time
from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import ArrayField, DateTimeRangeField, RangeOperators
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVector, SearchVectorField
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Func, Q

from apikit.ids import new_id
from apikit.models import TenantModel

FACILITY_TIMEZONE_INVALID = "{value!r} is not an IANA time zone name (e.g. Europe/Berlin)."


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(FACILITY_TIMEZONE_INVALID.format(value=value))


class Facility(TenantModel):
    """A clinic site. Users are granted ``view`` or ``manage`` on facilities (guardian), and see
    the patients, appointments and prescriptions of the facilities they may view."""

    name = models.CharField(max_length=200)
    code = models.CharField(max_length=32, unique=True)
    # Appointment times are shown and validated in this zone (opening hours, reminders).
    timezone = models.CharField(max_length=64, validators=[validate_timezone])
    address = models.TextField(blank=True)
    phone = models.CharField(max_length=20, blank=True)

    class Meta:
        verbose_name_plural = "facilities"
        permissions = [("manage_facility", "Can manage the facility and everything under it")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


class Sex(models.TextChoices):
    FEMALE = "female", "Female"
    MALE = "male", "Male"
    OTHER = "other", "Other"
    UNKNOWN = "unknown", "Unknown"


class Patient(TenantModel):
    audit_reads: ClassVar[bool] = True

    # Unique per tenant: each tenant has its own schema, so a plain unique column is enough.
    mrn = models.CharField("MRN", max_length=32, unique=True)
    given_name = models.CharField(max_length=100)
    family_name = models.CharField(max_length=100)
    birth_date = models.DateField()
    sex = models.CharField(max_length=10, choices=Sex.choices, default=Sex.UNKNOWN)
    # E.164 (+4915112345678), normalised by the service with phonenumbers; blank when unknown.
    phone = models.CharField(max_length=20, blank=True, db_index=True)
    # phonenumbers' MOBILE verdict on ``phone`` (FHIR telecom.use), computed by every write path
    # (clinical.rules.phone_is_mobile) so reads and exports do not parse the number; None: no
    # phone, or a row written around those paths (readers then parse the number themselves).
    phone_is_mobile = models.BooleanField(null=True, blank=True, editable=False)
    sms_opt_in = models.BooleanField(default=False)
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="patients")
    assigned_clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_patients",
    )
    # db_default: the sync push inserts patients set-wise without this server-managed column.
    visit_count = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    # Computed by PostgreSQL itself, so bulk_create, update() and sync pushes cannot leave it
    # stale. 'simple' config: names are not words of any one language (no stemming). Not the
    # phone: only some roles may see it (clinical.projection), so full text would let the others
    # find a patient by number; the search matches phones exactly, for those roles only.
    search_vector = models.GeneratedField(
        expression=SearchVector("mrn", "given_name", "family_name", config="simple"),
        output_field=SearchVectorField(),
        db_persist=True,
    )

    class Meta:
        indexes = [
            GinIndex(fields=["search_vector"], name="clinical_patient_search_gin"),
            models.Index(fields=["family_name", "given_name"], name="clinical_patient_name_idx"),
            models.Index(fields=["facility", "-id"], name="clinical_patient_facility_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.family_name}, {self.given_name} ({self.mrn})"


class AppointmentStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    CHECKED_IN = "checked_in", "Checked in"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"
    NO_SHOW = "no_show", "No show"


class TsTzRange(Func):
    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class Appointment(TenantModel):
    audit_reads: ClassVar[bool] = True

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="appointments")
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="appointments"
    )
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="appointments")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    status = models.CharField(
        max_length=12, choices=AppointmentStatus.choices, default=AppointmentStatus.SCHEDULED
    )
    reason = models.CharField(max_length=500, blank=True)
    checked_in_at = models.DateTimeField(null=True, blank=True, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)
    cancelled_at = models.DateTimeField(null=True, blank=True, editable=False)
    cancellation_reason = models.CharField(max_length=500, blank=True)
    # Reminders (SMS) are built later; the outbox will key on these. Services keep them current.
    reminder_due_at = models.DateTimeField(null=True, blank=True, editable=False)
    reminder_sent_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=models.F("starts_at")),
                name="clinical_appointment_ends_after_start",
            ),
            # No double booking, enforced by PostgreSQL (btree_gist, created in public) so races,
            # bulk writes and offline pushes cannot get round it. '[)' ranges: back-to-back
            # appointments (10:00-10:30, 10:30-11:00) do not overlap.
            ExclusionConstraint(
                name="clinical_appointment_no_double_booking",
                expressions=[
                    ("clinician", RangeOperators.EQUAL),
                    (TsTzRange("starts_at", "ends_at"), RangeOperators.OVERLAPS),
                ],
                condition=Q(archived_at__isnull=True) & ~Q(status="cancelled"),
            ),
        ]
        indexes = [
            models.Index(fields=["facility", "starts_at"], name="clinical_appt_facility_start"),
            models.Index(fields=["patient", "starts_at"], name="clinical_appt_patient_start"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id} @ {self.starts_at:%Y-%m-%d %H:%M}"


class PrescriptionStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


class Prescription(TenantModel):
    audit_reads: ClassVar[bool] = True

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="prescriptions")
    prescriber = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="prescriptions"
    )
    appointment = models.ForeignKey(
        Appointment,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="prescriptions",
    )
    status = models.CharField(
        max_length=12, choices=PrescriptionStatus.choices, default=PrescriptionStatus.ACTIVE
    )
    notes = models.TextField(blank=True)

    def __str__(self) -> str:
        return f"Prescription {self.pk}"


class Route(models.TextChoices):
    ORAL = "oral", "Oral"
    SUBLINGUAL = "sublingual", "Sublingual"
    TOPICAL = "topical", "Topical"
    INHALED = "inhaled", "Inhaled"
    INTRAVENOUS = "intravenous", "Intravenous"
    INTRAMUSCULAR = "intramuscular", "Intramuscular"
    SUBCUTANEOUS = "subcutaneous", "Subcutaneous"
    RECTAL = "rectal", "Rectal"
    OTHER = "other", "Other"


class PrescriptionItem(TenantModel):
    audit_reads: ClassVar[bool] = True

    prescription = models.ForeignKey(Prescription, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveSmallIntegerField(default=0)
    medication = models.CharField(max_length=200)
    dose = models.CharField(max_length=100)
    route = models.CharField(max_length=16, choices=Route.choices)
    frequency = models.CharField(max_length=100)
    duration_days = models.PositiveIntegerField()
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.CheckConstraint(
                condition=Q(duration_days__gte=1) & Q(quantity__gte=1),
                name="clinical_prescriptionitem_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.medication} {self.dose}"


class PatientDocument(TenantModel):
    audit_reads: ClassVar[bool] = True

    patient = models.ForeignKey(Patient, on_delete=models.PROTECT, related_name="documents")
    title = models.CharField(max_length=200, blank=True)
    path = models.CharField(max_length=300, editable=False)
    content_type = models.CharField(max_length=100, editable=False)
    size = models.PositiveBigIntegerField(editable=False)
    sha256 = models.CharField(max_length=64, editable=False)
    original_name = models.CharField(max_length=200, editable=False)

    def __str__(self) -> str:
        return self.title or self.original_name


# --- appointment reminders (SMS outbox; clinical/reminders/, docs/reminders.md) ----------------


def _default_reminder_kinds() -> list[dict[str, object]]:
    return [
        {"kind": "day_before", "minutes_before": 24 * 60},
        {"kind": "two_hours", "minutes_before": 120},
    ]


DEFAULT_REMINDER_TEMPLATE = (
    "Reminder: {patient_given_name}, you have an appointment at {facility_name} on "
    "{local_date} at {local_time}. Reply STOP to opt out."
)


class ReminderSettings(TenantModel):
    """The tenant's reminder rules: at most one row per tenant schema (``singleton`` is always
    1). Missing row = the defaults below, shown by the API as version 0 (never saved). A
    ``TenantModel`` so that it carries ``version`` (ETag, If-Match) and who changed it last, like
    every other mutable resource; ``clinical.reminders.rules`` validates it (admin and API)."""

    singleton = models.PositiveSmallIntegerField(default=1, unique=True, editable=False)
    enabled = models.BooleanField(default=True)
    # [{"kind": "day_before", "minutes_before": 1440}, ...]; validated by clinical.reminders.
    kinds = models.JSONField(default=_default_reminder_kinds)
    # str.format placeholders: patient_given_name, patient_family_name, facility_name,
    # local_date, local_time, kind.
    template = models.TextField(default=DEFAULT_REMINDER_TEMPLATE)
    # Local (facility) wall-clock window in which nothing is sent; may cross midnight.
    quiet_start = models.TimeField(default=time(21, 0))
    quiet_end = models.TimeField(default=time(7, 0))

    class Meta:
        verbose_name = "reminder settings"
        verbose_name_plural = "reminder settings"
        constraints = [
            models.CheckConstraint(condition=Q(singleton=1), name="clinical_remindersettings_one")
        ]

    def __str__(self) -> str:
        return "Reminder settings"


class ReminderState(models.TextChoices):
    PENDING = "pending", "Pending"
    # Waiting for quiet hours to end or for tomorrow's quota (``reason`` says which).
    DEFERRED = "deferred", "Deferred"
    # Claimed by a worker; the provider may or may not have the message yet.
    SENDING = "sending", "Sending"
    # The provider's answer was ambiguous (timeout, 5xx): reconciled before any resend.
    UNKNOWN = "unknown", "Unknown"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


class ReminderMessage(models.Model):
    """The outbox: one row per (appointment, kind, due time), written in the appointment's
    transaction; Celery delivers it (claim first, provider id after) and beat sweeps due and
    stuck rows. Not a TenantModel: nobody edits it, and it has no soft delete."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    appointment = models.ForeignKey(Appointment, on_delete=models.CASCADE, related_name="reminders")
    kind = models.CharField(max_length=32)
    due_at = models.DateTimeField()
    # When the row may next be claimed (due_at, then moved by quiet hours, quota, retries).
    send_after = models.DateTimeField()
    state = models.CharField(
        max_length=10, choices=ReminderState.choices, default=ReminderState.PENDING
    )
    reason = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # Snapshot of what was (to be) sent, taken when the row is claimed.
    phone = models.CharField(max_length=20, blank=True)
    body = models.TextField(blank=True)
    provider_sid = models.CharField(max_length=64, blank=True)
    provider_status = models.CharField(max_length=20, blank=True)
    error_code = models.CharField(max_length=20, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["appointment", "kind", "due_at"], name="clinical_reminder_unique_key"
            ),
        ]
        indexes = [
            # The dispatcher's claim: due rows in send order (partial: only claimable rows).
            models.Index(
                fields=["send_after"],
                name="clinical_reminder_due",
                condition=Q(state__in=["pending", "deferred"]),
            ),
            # The stuck sweep: claimed rows whose worker may have died.
            models.Index(
                fields=["claimed_at"],
                name="clinical_reminder_claimed",
                condition=Q(state__in=["sending", "unknown"]),
            ),
            models.Index(fields=["provider_sid"], name="clinical_reminder_provider_sid"),
            models.Index(fields=["state", "-due_at"], name="clinical_reminder_state_due"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} reminder for {self.appointment_id} ({self.state})"


# --- FHIR Bulk Data export jobs (clinical.bulkdata; docs/fhir.md, "Bulk Data export") ------------


class BulkExportLevel(models.TextChoices):
    SYSTEM = "system", "System ([base]/$export)"
    PATIENT = "patient", "Patient ([base]/Patient/$export)"


class BulkExportStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class BulkExport(models.Model):
    """One export kick-off, in the tenant's schema (a status or file URL of another tenant is not
    there: 404)."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    level = models.CharField(max_length=16, choices=BulkExportLevel.choices)
    # The kick-off URL as the client sent it (the manifest's ``request``).
    request_url = models.TextField()
    resource_types = ArrayField(models.CharField(max_length=32))
    since = models.DateTimeField(null=True, blank=True)
    output_format = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=BulkExportStatus.choices, default=BulkExportStatus.ACCEPTED
    )
    # True while accepted or running: the partial unique constraint below allows one such job per
    # tenant (a second kick-off answers 429), decided by the database, not by a check-then-insert.
    active = models.BooleanField(default=True)
    # The kick-off request's who/where (apikit.request_context), for the audit events the worker
    # records in the requester's name.
    audit_context = models.JSONField(default=dict)
    transaction_time = models.DateTimeField(null=True, blank=True)
    # [{"type": "Patient", "path": "<storage name>", "count": 12}, ...]
    output = models.JSONField(default=list)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        # apikit.policy.BULK_EXPORT_SYSTEM: the system-level export of everything.
        permissions = [("export_system", "Can export every resource of the organisation")]
        constraints = [
            models.UniqueConstraint(
                fields=["active"], condition=Q(active=True), name="clinical_bulkexport_one_active"
            ),
        ]
        indexes = [
            models.Index(fields=["expires_at"], name="clinical_bulkexport_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.level} export {self.id} ({self.status})"
