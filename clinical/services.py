"""Writes of the clinical domain. Each service owns its transaction and checks the domain rules
(``clinical.rules``, which the sync push calls too); views only validate input and call these.
Appointment changes all pass through here so reminders hook in at ``_appointment_changed``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, models, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework.exceptions import ValidationError

from apikit.concurrency import archive, version_conflict, versioned_update
from apikit.errors import APIError
from apikit.models import TenantModel
from apikit.policy import AccessLevel, container_access_grant, container_access_revoke
from apikit.request_context import RequestContext
from apikit.rules import RuleError
from apikit.uploads import stored_file_delete, upload_store
from audit.services import audit_object_type, audit_permission_change
from clinical import rules
from clinical.models import (
    Appointment,
    AppointmentStatus,
    Facility,
    Patient,
    PatientDocument,
    Prescription,
    PrescriptionItem,
)
from clinical.reminders import reminders_sync_for_appointments
from clinical.rules import MRN_TAKEN

FACILITY_CODE_TAKEN = "A facility with this code already exists."
APPOINTMENT_CONFLICT = (
    "The clinician already has an appointment overlapping {start} - {end}; choose another time."
)
INVALID_TRANSITION = "Cannot {action} an appointment that is {status}."
HARD_DELETE_REFERENCED = (
    "{count} other record(s) still reference this object ({details}); archive it instead, or "
    "delete those first."
)

DOCUMENT_MAX_BYTES = 10 * 1024 * 1024
_NO_DOUBLE_BOOKING = "clinical_appointment_no_double_booking"
_ENDS_AFTER_START = "clinical_appointment_ends_after_start"

# Where a transition may start from, per action (DESIGN 6: scheduled -> checked_in -> completed,
# or cancelled / no_show).
TRANSITIONS: Mapping[str, tuple[frozenset[str], str]] = {
    "cancel": (frozenset({AppointmentStatus.SCHEDULED}), AppointmentStatus.CANCELLED),
    "check_in": (frozenset({AppointmentStatus.SCHEDULED}), AppointmentStatus.CHECKED_IN),
    "complete": (frozenset({AppointmentStatus.CHECKED_IN}), AppointmentStatus.COMPLETED),
    "no_show": (frozenset({AppointmentStatus.SCHEDULED}), AppointmentStatus.NO_SHOW),
}
_TRANSITION_VERBS = {
    "cancel": "cancel",
    "check_in": "check in",
    "complete": "complete",
    "no_show": "mark as no-show",
}


# --- shared helpers ----------------------------------------------------------------------------


def _phone(raw: str) -> str:
    """``clinical.rules.phone_normalise``; an invalid number is a 400 on ``phone``."""
    try:
        return rules.phone_normalise(phone=raw)
    except RuleError as exc:
        raise exc.as_validation_error() from None


def _constraint_name(error: IntegrityError) -> str:
    diag = getattr(error.__cause__, "diag", None)
    return str(getattr(diag, "constraint_name", "") or "")


def _unique_violation(error: IntegrityError, column: str) -> bool:
    name = _constraint_name(error)
    return name.endswith(f"_{column}_key") or f"_{column}_" in name


def hard_delete(*, instance: TenantModel) -> None:
    """Delete the row for good, unless anything (archived rows included) still references it:
    then 409 ``object_referenced`` with the count per kind. Parts of the object itself
    (``on_delete=CASCADE``, such as prescription items) go with it."""
    counts: dict[str, int] = {}
    for relation in instance._meta.related_objects:
        if not relation.one_to_many or relation.on_delete is models.CASCADE:
            continue
        related_model: Any = relation.related_model
        count = related_model._base_manager.filter(**{relation.field.name: instance}).count()
        if count:
            counts[audit_object_type(related_model)] = count
    if counts:
        details = ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))
        raise APIError(
            status=409,
            code="object_referenced",
            detail=HARD_DELETE_REFERENCED.format(count=sum(counts.values()), details=details),
        )
    with transaction.atomic():
        type(instance).all_objects.filter(pk=instance.pk).delete()
        if isinstance(instance, Facility):
            _object_permissions_delete(instance)


def _object_permissions_delete(instance: TenantModel) -> None:
    """Guardian rows point at objects by a generic key, so nothing cascades to them."""
    from django.contrib.contenttypes.models import ContentType
    from guardian.models import GroupObjectPermission, UserObjectPermission

    content_type = ContentType.objects.get_for_model(type(instance))
    for model in (UserObjectPermission, GroupObjectPermission):
        model.objects.filter(content_type=content_type, object_pk=str(instance.pk)).delete()


# --- facilities --------------------------------------------------------------------------------


def facility_create(
    *, name: str, code: str, timezone: str, address: str, phone: str, actor: Any
) -> Facility:
    try:
        with transaction.atomic():
            return Facility.objects.create(
                name=name,
                code=code,
                timezone=timezone,
                address=address,
                phone=_phone(phone),
                created_by=actor,
                updated_by=actor,
            )
    except IntegrityError as error:
        if _unique_violation(error, "code"):
            raise ValidationError({"code": [FACILITY_CODE_TAKEN]}) from None
        raise


def facility_update(
    *, facility: Facility, expected_version: int, changes: dict[str, Any], actor: Any
) -> Facility:
    if "phone" in changes:
        changes["phone"] = _phone(changes["phone"])
    try:
        with transaction.atomic():
            return versioned_update(
                instance=facility, expected_version=expected_version, changes=changes, actor=actor
            )
    except IntegrityError as error:
        if _unique_violation(error, "code"):
            raise ValidationError({"code": [FACILITY_CODE_TAKEN]}) from None
        raise


def facility_archive(*, facility: Facility, expected_version: int, actor: Any) -> Facility:
    return archive(instance=facility, expected_version=expected_version, actor=actor)


@transaction.atomic
def facility_access_change(
    *,
    facility: Facility,
    user: Any,
    level: AccessLevel,
    grant: bool,
    context: RequestContext | None,
) -> None:
    """Grant or revoke ``level`` on ``facility`` for ``user``; audited as ``permission_change``
    (the facility and the user, in one event, in the same transaction as the change)."""
    if grant:
        container_access_grant(user=user, container=facility, level=level)
    else:
        container_access_revoke(user=user, container=facility, level=level)
    audit_permission_change(
        context=context,
        container=facility,
        user=user,
        change=f"{'grant' if grant else 'revoke'}:{level}",
    )


# --- patients ----------------------------------------------------------------------------------


def patient_create(
    *,
    facility: Facility,
    mrn: str,
    given_name: str,
    family_name: str,
    birth_date: date,
    sex: str,
    phone: str = "",
    sms_opt_in: bool = False,
    assigned_clinician: Any = None,
    actor: Any,
) -> Patient:
    phone = _phone(phone)
    try:
        with transaction.atomic():
            return Patient.objects.create(
                facility=facility,
                mrn=mrn,
                given_name=given_name,
                family_name=family_name,
                birth_date=birth_date,
                sex=sex,
                phone=phone,
                phone_is_mobile=rules.phone_is_mobile(phone=phone),
                sms_opt_in=sms_opt_in,
                assigned_clinician=assigned_clinician,
                created_by=actor,
                updated_by=actor,
            )
    except IntegrityError as error:
        if _unique_violation(error, "mrn"):
            raise ValidationError({"mrn": [MRN_TAKEN]}) from None
        raise


def patient_update(
    *, patient: Patient, expected_version: int, changes: dict[str, Any], actor: Any
) -> Patient:
    if "phone" in changes:
        changes["phone"] = _phone(changes["phone"])
        changes["phone_is_mobile"] = rules.phone_is_mobile(phone=changes["phone"])
    try:
        with transaction.atomic():
            return versioned_update(
                instance=patient, expected_version=expected_version, changes=changes, actor=actor
            )
    except IntegrityError as error:
        if _unique_violation(error, "mrn"):
            raise ValidationError({"mrn": [MRN_TAKEN]}) from None
        raise


def patient_archive(*, patient: Patient, expected_version: int, actor: Any) -> Patient:
    return archive(instance=patient, expected_version=expected_version, actor=actor)


# --- appointments ------------------------------------------------------------------------------


def _check_times(starts_at: datetime, ends_at: datetime) -> None:
    try:
        rules.appointment_times_check(starts_at=starts_at, ends_at=ends_at)
    except RuleError as exc:
        raise exc.as_validation_error() from None


def _conflict(starts_at: datetime, ends_at: datetime) -> APIError:
    return APIError(
        status=409,
        code="appointment_conflict",
        detail=APPOINTMENT_CONFLICT.format(start=starts_at.isoformat(), end=ends_at.isoformat()),
    )


def _appointment_changed(*, appointment: Appointment, previous: Appointment | None) -> None:
    """Every appointment write ends here, inside its transaction: reminders are created,
    regenerated or cancelled with it (delivery is enqueued from transaction.on_commit)."""
    if previous is not None and (
        previous.starts_at == appointment.starts_at
        and previous.status == appointment.status
        and previous.archived_at == appointment.archived_at
    ):
        return  # nothing a reminder depends on changed
    reminders_sync_for_appointments(appointment_ids=[appointment.pk])


def appointment_create(
    *,
    patient: Patient,
    clinician: Any,
    facility: Facility,
    starts_at: datetime,
    ends_at: datetime,
    reason: str = "",
    actor: Any,
) -> Appointment:
    _check_times(starts_at, ends_at)
    try:
        with transaction.atomic():
            appointment = Appointment.objects.create(
                patient=patient,
                clinician=clinician,
                facility=facility,
                starts_at=starts_at,
                ends_at=ends_at,
                reason=reason,
                created_by=actor,
                updated_by=actor,
            )
            _appointment_changed(appointment=appointment, previous=None)
            return appointment
    except IntegrityError as error:
        # The exclusion constraint is the only judge: a check-then-insert would race.
        if _constraint_name(error) == _NO_DOUBLE_BOOKING:
            raise _conflict(starts_at, ends_at) from None
        raise


def appointment_update(
    *, appointment: Appointment, expected_version: int, changes: dict[str, Any], actor: Any
) -> Appointment:
    """Reschedule (times, clinician) or change the reason. Times only move while scheduled."""
    moving = sorted({"starts_at", "ends_at", "clinician"} & set(changes))
    try:
        rules.appointment_move_check(status=appointment.status, moved=moving)
    except RuleError as exc:
        raise APIError(status=409, code=exc.code, detail=exc.message) from None
    starts_at = changes.get("starts_at", appointment.starts_at)
    ends_at = changes.get("ends_at", appointment.ends_at)
    _check_times(starts_at, ends_at)
    try:
        with transaction.atomic():
            fresh = versioned_update(
                instance=appointment,
                expected_version=expected_version,
                changes=changes,
                actor=actor,
            )
            _appointment_changed(appointment=fresh, previous=appointment)
            return fresh
    except IntegrityError as error:
        if _constraint_name(error) == _NO_DOUBLE_BOOKING:
            raise _conflict(starts_at, ends_at) from None
        raise


def appointment_transition(
    *,
    appointment: Appointment,
    action: str,
    expected_version: int,
    actor: Any,
    reason: str = "",
) -> Appointment:
    """``cancel`` / ``check_in`` / ``complete`` / ``no_show`` as one conditional UPDATE on
    (id, version, status), so two clerks checking in at once cannot count a visit twice."""
    allowed_from, target = TRANSITIONS[action]
    now = timezone.now()
    changes: dict[str, Any] = {"status": target}
    if action == "cancel":
        changes.update(cancelled_at=now, cancellation_reason=reason)
    elif action == "check_in":
        changes["checked_in_at"] = now
    elif action == "complete":
        changes["completed_at"] = now
    with transaction.atomic():
        updated = Appointment.all_objects.filter(
            pk=appointment.pk, version=expected_version, status__in=allowed_from
        ).update(**changes, version=F("version") + 1, updated_at=now, updated_by=actor)
        if updated == 0:
            current = Appointment.all_objects.filter(pk=appointment.pk).values("version", "status")
            row = current.first() or {"version": 0, "status": appointment.status}
            if row["version"] != expected_version:
                raise version_conflict(sent=expected_version, current=row["version"])
            raise APIError(
                status=409,
                code="invalid_transition",
                detail=INVALID_TRANSITION.format(
                    action=_TRANSITION_VERBS[action], status=row["status"]
                ),
            )
        if action == "check_in":
            # Atomic increment: concurrent check-ins of one patient never lose a visit.
            Patient.all_objects.filter(pk=appointment.patient_id).update(
                visit_count=F("visit_count") + 1
            )
        fresh = Appointment.all_objects.get(pk=appointment.pk)
        _appointment_changed(appointment=fresh, previous=appointment)
        return fresh


def appointment_archive(
    *, appointment: Appointment, expected_version: int, actor: Any
) -> Appointment:
    with transaction.atomic():
        archived = archive(instance=appointment, expected_version=expected_version, actor=actor)
        _appointment_changed(appointment=archived, previous=appointment)
        return archived


# --- prescriptions -----------------------------------------------------------------------------


def _items_insert(
    *, prescription: Prescription, items: Sequence[Mapping[str, Any]], actor: Any
) -> None:
    PrescriptionItem.objects.bulk_create(
        [
            PrescriptionItem(
                prescription=prescription,
                position=index,
                created_by=actor,
                updated_by=actor,
                **dict(item),
            )
            for index, item in enumerate(items)
        ]
    )


@transaction.atomic
def prescription_create(
    *,
    patient: Patient,
    prescriber: Any,
    items: Sequence[Mapping[str, Any]],
    notes: str = "",
    appointment: Appointment | None = None,
    actor: Any,
) -> Prescription:
    """The prescription and all its items, or nothing (one transaction, one bulk INSERT)."""
    prescription = Prescription.objects.create(
        patient=patient,
        prescriber=prescriber,
        appointment=appointment,
        notes=notes,
        created_by=actor,
        updated_by=actor,
    )
    _items_insert(prescription=prescription, items=items, actor=actor)
    return prescription


@transaction.atomic
def prescription_update(
    *,
    prescription: Prescription,
    expected_version: int,
    changes: dict[str, Any],
    items: Sequence[Mapping[str, Any]] | None,
    actor: Any,
) -> Prescription:
    """Apply ``changes``; when ``items`` is given it REPLACES the whole item set (the old items
    are deleted, the new ones bulk-inserted), in the same transaction as the version bump."""
    fresh = versioned_update(
        instance=prescription, expected_version=expected_version, changes=changes, actor=actor
    )
    if items is not None:
        PrescriptionItem.all_objects.filter(prescription=fresh).delete()
        _items_insert(prescription=fresh, items=items, actor=actor)
    return fresh


def prescription_archive(
    *, prescription: Prescription, expected_version: int, actor: Any
) -> Prescription:
    return archive(instance=prescription, expected_version=expected_version, actor=actor)


# --- documents ---------------------------------------------------------------------------------


def document_create(
    *, patient: Patient, upload: UploadedFile, title: str = "", actor: Any
) -> PatientDocument:
    stored = upload_store(upload=upload, category="patient-documents", max_bytes=DOCUMENT_MAX_BYTES)
    try:
        with transaction.atomic():
            return PatientDocument.objects.create(
                patient=patient,
                title=title,
                path=stored.path,
                content_type=stored.content_type,
                size=stored.size,
                sha256=stored.sha256,
                original_name=stored.original_name,
                created_by=actor,
                updated_by=actor,
            )
    except Exception:
        # No row, no file: an orphaned upload would be unreachable but still hold patient data.
        stored_file_delete(path=stored.path)
        raise


def document_archive(
    *, document: PatientDocument, expected_version: int, actor: Any
) -> PatientDocument:
    return archive(instance=document, expected_version=expected_version, actor=actor)
