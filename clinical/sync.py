"""Clinical tables offered to field apps (platform/sync/registry.py describes the contract),
registered once for the pull and the push; imported by ``ClinicalConfig.ready()``.

Rows are scoped by facility grants (``apikit.policy``). Conflicts on clinical rows are never
merged automatically: the client gets the server's copy (``reject``). Patients' fields are
projected by role with the one definition the API uses too (``clinical.projection``: phone numbers
only for admin, clinician, nurse and receptionist). A pushed row
is checked with the same rules the services apply (``clinical.rules``); appointments also get
one overlap query per batch (no double booking) and their reminders in the push's transaction.
"""

from __future__ import annotations

import bisect
import datetime as dt
import uuid
from collections import defaultdict
from typing import Any

from django.db.models import QuerySet

from accounts.models import User
from apikit.policy import AccessLevel, scope_to_containers
from clinical import rules
from clinical.models import Appointment, AppointmentStatus, Facility, Patient, Sex
from clinical.projection import RESTRICTED_PATIENT_FIELDS, patient_projection
from clinical.reminders import reminders_sync_for_appointments
from sync.columns import Column, FieldError, choices_of
from sync.push.context import PushContext
from sync.push.rows import Draft, Mode, RowErrors, Status, error, server_record
from sync.registry import (
    COMMON_SERVER_MANAGED,
    ConflictPolicy,
    ConstraintRule,
    Derived,
    Reference,
    SyncTable,
    projection_all,
    register,
    register_reference,
)

_BASE = {"id": "id", "version": "version", "created_at": "created_at", "updated_at": "updated_at"}


def _facility_scope(user: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    return scope_to_containers(
        queryset.filter(facility__archived_at__isnull=True),
        user=user,
        container_field="facility",
        container_model=Facility,
        level=AccessLevel.VIEW,
    )


def _patient_projection(user: Any) -> frozenset[str]:
    """The wire fields of a patient ``user``'s role receives (clinical.projection)."""
    return patient_projection(user=user).visible(PATIENT_FIELDS)


PATIENT_FIELDS = {
    **_BASE,
    "mrn": "mrn",
    "given_name": "given_name",
    "family_name": "family_name",
    "birth_date": "birth_date",
    "sex": "sex",
    "phone": "phone",
    "sms_opt_in": "sms_opt_in",
    "facility_id": "facility_id",
    "assigned_clinician_id": "assigned_clinician_id",
    "visit_count": "visit_count",
}
APPOINTMENT_FIELDS = {
    **_BASE,
    "patient_id": "patient_id",
    "clinician_id": "clinician_id",
    "facility_id": "facility_id",
    "starts_at": "starts_at",
    "ends_at": "ends_at",
    "status": "status",
    "reason": "reason",
    "checked_in_at": "checked_in_at",
    "completed_at": "completed_at",
    "cancelled_at": "cancelled_at",
    "cancellation_reason": "cancellation_reason",
}

# --- push: the rules for one pushed row, and for a batch of appointments ----------------------

SLOT_TAKEN = "The clinician already has an appointment overlapping this time."
NO_DOUBLE_BOOKING = "clinical_appointment_no_double_booking"
SLOT_TAKEN_ERROR = error("appointment_conflict", SLOT_TAKEN, "starts_at")


def _clinician(ctx: PushContext, column: str, value: Any) -> None:
    info = ctx.ref("users", value) or {}
    rules.clinician_check(
        role=info.get("role"), is_active=bool(info.get("is_active")), field=column
    )


def _patient_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    errors = RowErrors()
    with errors.collect():
        ctx.check_ref(
            "facilities", column="facility_id", value=values["facility_id"], label="facility"
        )
    with errors.collect():
        rules.mrn_check(mrn=values["mrn"])
        owner = ctx.ref("patient_mrns", values["mrn"])
        if owner is not None and owner["id"] != draft.id:
            raise FieldError("mrn", rules.MRN_TAKEN, "unique")
    with errors.collect():
        rules.birth_date_check(birth_date=values["birth_date"], today=ctx.now.date())
    with errors.collect():
        values["phone"] = rules.phone_normalise(phone=values["phone"])
        values["phone_is_mobile"] = rules.phone_is_mobile(phone=values["phone"])
    with errors.collect():
        rules.sms_consent_check(sms_opt_in=values["sms_opt_in"], phone=values["phone"])
    if values["assigned_clinician_id"] is not None:
        with errors.collect():
            _clinician(ctx, "assigned_clinician_id", values["assigned_clinician_id"])
    errors.raise_any()
    # Later rows of this batch see this MRN as taken.
    ctx.remember("patient_mrns", values["mrn"], {"id": draft.id})


def _patient_preload(rows: list[Any], ctx: PushContext) -> None:
    mrns = sorted({row.fields["mrn"] for row in rows if isinstance(row.fields.get("mrn"), str)})
    if not mrns:
        return
    found = ctx.fetch(
        f"SELECT id, mrn FROM {Patient._meta.db_table} WHERE mrn = ANY(%s::text[])",  # noqa: S608
        [mrns],
    )
    for item in found:
        ctx.remember("patient_mrns", item["mrn"], {"id": item["id"]})


def _appointment_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    existing = draft.existing
    patient = ctx.check_ref(
        "patients", column="patient_id", value=values["patient_id"], label="patient"
    )
    if values["facility_id"] is None:
        values["facility_id"] = patient["facility_id"]
    errors = RowErrors()
    with errors.collect():
        rules.appointment_facility_check(
            facility_id=values["facility_id"], patient_facility_id=patient["facility_id"]
        )
    with errors.collect():
        _clinician(ctx, "clinician_id", values["clinician_id"])
    with errors.collect():
        rules.appointment_times_check(starts_at=values["starts_at"], ends_at=values["ends_at"])
    current = existing["status"] if existing is not None else AppointmentStatus.SCHEDULED
    with errors.collect():
        if rules.appointment_push_cancels(current=current, wanted=values["status"]):
            values["cancelled_at"] = ctx.now
        elif existing is not None:
            moved = ("clinician_id", "starts_at", "ends_at", "patient_id", "facility_id")
            rules.appointment_move_check(
                status=current, moved=[name for name in moved if values[name] != existing[name]]
            )
    errors.raise_any()
    if existing is not None and "cancelled_at" not in values:
        values["cancelled_at"] = existing.get("cancelled_at")


def _slot_taken(draft: Draft) -> None:
    existing = draft.existing
    draft.finish(
        Status.CONFLICT,
        version=existing["version"] if existing else None,
        reason="slot_taken",
        errors=[dict(SLOT_TAKEN_ERROR)],
        conflicting_fields=["clinician_id", "starts_at", "ends_at"],
        server_record=server_record(APPOINTMENTS, existing) if existing else None,
    )


def _overlaps(ctx: PushContext, live: list[Draft], touched: list[uuid.UUID]) -> set[uuid.UUID]:
    """Pushed rows whose (clinician, [start, end)) overlaps a live, non-cancelled appointment
    not touched by this batch (one query)."""
    if not live:
        return set()
    found = ctx.fetch(
        "SELECT u.id AS pushed, a.id AS other FROM unnest(%s::uuid[], %s::uuid[], "  # noqa: S608
        "%s::timestamptz[], %s::timestamptz[]) AS u(id, clinician, s, e) "
        f"JOIN {Appointment._meta.db_table} a ON a.clinician_id = u.clinician "
        "AND tstzrange(a.starts_at, a.ends_at) && tstzrange(u.s, u.e) "
        "WHERE a.archived_at IS NULL AND a.status <> 'cancelled' AND a.id <> ALL(%s::uuid[])",
        [
            [d.id for d in live],
            [d.values["clinician_id"] for d in live],
            [d.values["starts_at"] for d in live],
            [d.values["ends_at"] for d in live],
            touched,
        ],
    )
    return {row["pushed"] for row in found}


def _slots_check(drafts: list[Draft], ctx: PushContext) -> None:
    """No double booking: one overlap query against the server's appointments, and an in-batch
    check (the earlier row of the request keeps the slot)."""
    live = [
        d
        for d in drafts
        if d.mode in (Mode.INSERT, Mode.UPDATE) and d.values["status"] != "cancelled"
    ]
    overlapping = _overlaps(ctx, live, [d.id for d in drafts if d.mode is not None])
    taken: dict[uuid.UUID, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for draft in live:
        if draft.id in overlapping:
            _slot_taken(draft)
            continue
        start, end = draft.values["starts_at"], draft.values["ends_at"]
        booked = taken[draft.values["clinician_id"]]
        position = bisect.bisect_left(booked, (start, end))
        clash = (position > 0 and booked[position - 1][1] > start) or (
            position < len(booked) and booked[position][0] < end
        )
        if clash:
            _slot_taken(draft)
            continue
        booked.insert(position, (start, end))


def _reminders(appointment_ids: list[uuid.UUID]) -> None:
    """Pushed appointments get their SMS reminders in the same transaction."""
    reminders_sync_for_appointments(appointment_ids=appointment_ids)


# --- the tables --------------------------------------------------------------------------------

# Referenced by pushed rows, never synced themselves.
register_reference(Reference("facilities", Facility, "t.id, t.archived_at"))
register_reference(
    Reference("users", User, "t.id, NULL::timestamptz AS archived_at, t.role, t.is_active")
)

PATIENTS = register(
    SyncTable(
        name="patients",
        model=Patient,
        fields=PATIENT_FIELDS,
        server_managed=COMMON_SERVER_MANAGED | {"visit_count"},
        conflict_policy=ConflictPolicy.REJECT,
        scope=_facility_scope,
        projection=_patient_projection,
        view_permission="clinical.view_patient",
        container_model=Facility,
        container_path="facility_id",
        sensitive_fields=frozenset(RESTRICTED_PATIENT_FIELDS),
        columns=(
            Column("facility_id", "uuid", required=True, ref="facilities", aliases=("facility",)),
            Column("mrn", "text", required=True, max_length=32),
            Column("given_name", "text", required=True, max_length=100),
            Column("family_name", "text", required=True, max_length=100),
            Column("birth_date", "date", required=True),
            Column("sex", "text", default=Sex.UNKNOWN.value, choices=choices_of(Sex)),
            Column("phone", "text", default="", max_length=40),
            Column("sms_opt_in", "bool", default=False),
            Column(
                "assigned_clinician_id",
                "uuid",
                nullable=True,
                ref="users",
                aliases=("assigned_clinician",),
            ),
        ),
        container_of=lambda values, ctx: values["facility_id"],
        clean=_patient_clean,
        # Set by _patient_clean from the normalised phone (FHIR telecom.use reads it).
        derived=(Derived("phone_is_mobile", "bool"),),
        preload=_patient_preload,
        ref_info=lambda values, ctx: {"facility_id": values["facility_id"], "archived_at": None},
        ref_sql="t.id, t.archived_at, t.facility_id",
    )
)
APPOINTMENTS = register(
    SyncTable(
        name="appointments",
        model=Appointment,
        fields=APPOINTMENT_FIELDS,
        # Status timestamps are set by the status machine on the server.
        server_managed=COMMON_SERVER_MANAGED | {"checked_in_at", "completed_at", "cancelled_at"},
        conflict_policy=ConflictPolicy.REJECT,
        scope=_facility_scope,
        projection=projection_all(APPOINTMENT_FIELDS),
        view_permission="clinical.view_appointment",
        container_model=Facility,
        container_path="facility_id",
        depends_on=("patients",),
        columns=(
            Column("patient_id", "uuid", required=True, ref="patients", aliases=("patient",)),
            Column("clinician_id", "uuid", required=True, ref="users", aliases=("clinician",)),
            Column("facility_id", "uuid", nullable=True, ref="facilities", aliases=("facility",)),
            Column("starts_at", "datetime", required=True),
            Column("ends_at", "datetime", required=True),
            Column(
                "status",
                "text",
                default=AppointmentStatus.SCHEDULED.value,
                choices=choices_of(AppointmentStatus),
            ),
            Column("reason", "text", default="", max_length=500),
            Column("cancellation_reason", "text", default="", max_length=500),
        ),
        container_of=lambda values, ctx: values["facility_id"],
        clean=_appointment_clean,
        derived=(Derived("cancelled_at", "timestamptz"),),
        check_batch=_slots_check,
        # Another device booked the slot between the overlap query and the write.
        constraints=(
            ConstraintRule(NO_DOUBLE_BOOKING, report=_slot_taken, batch_error=SLOT_TAKEN_ERROR),
        ),
        after_write=_reminders,
    )
)
