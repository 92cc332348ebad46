"""Input and output serializers of the clinical API: slim list rows, nested detail objects and
separate input serializers (which list exactly the writable fields, so ``created_by``,
``version``, ``visit_count`` or ``archived_at`` in a body are ignored)."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.utils import dateparse
from django.utils import timezone as django_timezone
from rest_framework import serializers

from accounts.models import User
from apikit.policy import AccessLevel
from apikit.rules import RuleError
from clinical import rules
from clinical.models import (
    Appointment,
    AppointmentStatus,
    Facility,
    Patient,
    PatientDocument,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
    Route,
    Sex,
    validate_timezone,
)
from clinical.projection import patient_projection_narrowest
from clinical.selectors import PATIENT_LIST_COLUMNS

DATETIME_INVALID = "Enter an ISO 8601 date-time, e.g. 2026-03-01T09:30:00+01:00."
DATETIME_NONEXISTENT = (
    "{value} does not exist in {zone} (the clocks skip it for daylight saving time)."
)
DATETIME_AMBIGUOUS = (
    "{value} happens twice in {zone} (daylight saving time ends); add the UTC offset."
)
_UTC_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc(value: datetime | None) -> str | None:
    """The API's timestamp format (DESIGN 5: UTC, ISO 8601 with Z), without DRF's field machinery."""
    if value is None:
        return None
    if value.tzinfo is not UTC:  # values loaded from the database already are
        value = value.astimezone(UTC)
    return value.strftime(_UTC_FORMAT)


def local(value: datetime | None, zone: str) -> str | None:
    if value is None:
        return None
    return value.astimezone(zoneinfo.ZoneInfo(zone)).isoformat()


def parse_local_datetime(value: Any, *, zone: str) -> datetime:
    """An ISO 8601 date-time; without an offset it is read as wall-clock time in ``zone`` (the
    facility's), and times the clocks skip or repeat there are refused, not guessed."""
    parsed = dateparse.parse_datetime(str(value)) if isinstance(value, str) else None
    if parsed is None:
        raise serializers.ValidationError(DATETIME_INVALID)
    if django_timezone.is_aware(parsed):
        return parsed
    tz = zoneinfo.ZoneInfo(zone)
    first, second = parsed.replace(tzinfo=tz, fold=0), parsed.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        # fold=0 and fold=1 differ only in a gap (nonexistent) or an overlap (ambiguous).
        roundtrip = first.astimezone(zoneinfo.ZoneInfo("UTC")).astimezone(tz)
        message = (
            DATETIME_NONEXISTENT if roundtrip.replace(tzinfo=None) != parsed else DATETIME_AMBIGUOUS
        )
        raise serializers.ValidationError(message.format(value=value, zone=zone))
    return first


# --- small nested shapes -----------------------------------------------------------------------


def user_brief(user: User | None) -> dict[str, Any] | None:
    if user is None:
        return None
    return {"id": str(user.pk), "full_name": user.full_name}


class UserBriefSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    full_name = serializers.CharField()


class FacilityBriefSerializer(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    code = serializers.CharField()
    name = serializers.CharField()


# --- facilities --------------------------------------------------------------------------------


class FacilityOutput(serializers.ModelSerializer[Facility]):
    class Meta:
        model = Facility
        fields = [
            "id",
            "name",
            "code",
            "timezone",
            "address",
            "phone",
            "version",
            "created_at",
            "updated_at",
        ]


class FacilityCreateInput(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=200)
    code = serializers.RegexField(r"^[A-Za-z0-9_-]+$", max_length=32)
    timezone = serializers.CharField(max_length=64, validators=[validate_timezone])
    address = serializers.CharField(required=False, allow_blank=True, default="")
    phone = serializers.CharField(required=False, allow_blank=True, default="", max_length=40)


class FacilityUpdateInput(FacilityCreateInput):
    version = serializers.IntegerField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty


class FacilityAccessInput(serializers.Serializer[Any]):
    user = serializers.UUIDField()
    level = serializers.ChoiceField(choices=[level.value for level in AccessLevel])


class FacilityAccessOutput(serializers.Serializer[Any]):
    user = UserBriefSerializer()
    email = serializers.EmailField()
    levels = serializers.ListField(child=serializers.CharField())


# --- patients ----------------------------------------------------------------------------------


PROJECTION_CONTEXT = "patient_projection"
PHONE_HELP = (
    "E.164. Only for roles that may see patients' phone numbers (docs/clinical.md, who sees "
    "what); left out for the others."
)


def _facility_brief(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"id": row["facility_id"], "code": row["facility__code"], "name": row["facility__name"]}


def _clinician_brief(row: Mapping[str, Any]) -> dict[str, Any] | None:
    clinician_id = row["assigned_clinician_id"]
    if clinician_id is None:
        return None
    return {"id": clinician_id, "full_name": row["assigned_clinician__full_name"]}


# List fields not rendered as their one column's value (selectors.PATIENT_LIST_COLUMNS).
_LIST_SHAPES: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "facility": _facility_brief,
    "assigned_clinician": _clinician_brief,
    "updated_at": lambda row: utc(row["updated_at"]),
}


class PatientListOutput(serializers.Serializer[Any]):
    """One list row. Declared for the schema (the same fields as
    ``selectors.PATIENT_LIST_COLUMNS``); ``to_representation`` builds the dict directly, because
    per-field serializer machinery is most of a list request's CPU time. Ids and the birth date
    stay ``UUID`` and ``date`` objects: the API's renderer (``apikit.json``) writes them as the
    same text ``str()`` and ``isoformat()`` would give."""

    id = serializers.UUIDField()
    mrn = serializers.CharField()
    given_name = serializers.CharField()
    family_name = serializers.CharField()
    birth_date = serializers.DateField()
    sex = serializers.ChoiceField(choices=Sex.choices)
    phone = serializers.CharField(required=False, help_text=PHONE_HELP)
    sms_opt_in = serializers.BooleanField()
    visit_count = serializers.IntegerField()
    facility = FacilityBriefSerializer()
    assigned_clinician = UserBriefSerializer(allow_null=True)
    version = serializers.IntegerField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: Mapping[str, Any]) -> dict[str, Any]:
        """``instance`` is a row of ``selectors.patient_list_queryset``: the fields whose columns
        it holds are rendered (a field the user's projection hides was never fetched)."""
        return {
            name: shape(instance) if (shape := _LIST_SHAPES.get(name)) else instance[name]
            for name, columns in PATIENT_LIST_COLUMNS.items()
            if columns[0] in instance
        }


class AppointmentBriefOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    starts_at_local = serializers.CharField()
    status = serializers.ChoiceField(choices=AppointmentStatus.choices)
    reason = serializers.CharField()
    clinician = UserBriefSerializer()
    facility = FacilityBriefSerializer()

    def to_representation(self, instance: Appointment) -> dict[str, Any]:
        facility = instance.facility
        return {
            "id": str(instance.pk),
            "starts_at": utc(instance.starts_at),
            "ends_at": utc(instance.ends_at),
            "starts_at_local": local(instance.starts_at, facility.timezone),
            "status": instance.status,
            "reason": instance.reason,
            "clinician": user_brief(instance.clinician),
            "facility": {"id": str(facility.pk), "code": facility.code, "name": facility.name},
        }


class PatientDetailOutput(serializers.ModelSerializer[Patient]):
    """A patient with every field the caller's projection shows: the view puts it in the context
    (``PROJECTION_CONTEXT``); without one, every restricted field is left out (fail closed)."""

    # Not read_only: the schema then lists it as optional (absent for some roles), not required.
    phone = serializers.CharField(required=False, help_text=PHONE_HELP)
    facility = FacilityOutput()
    assigned_clinician = UserBriefSerializer(allow_null=True)
    upcoming_appointments = AppointmentBriefOutput(many=True, source="upcoming")
    appointment_count = serializers.IntegerField()
    active_prescription_count = serializers.IntegerField()
    document_count = serializers.IntegerField()

    class Meta:
        model = Patient
        fields = [
            "id",
            "mrn",
            "given_name",
            "family_name",
            "birth_date",
            "sex",
            "phone",
            "sms_opt_in",
            "visit_count",
            "facility",
            "assigned_clinician",
            "upcoming_appointments",
            "appointment_count",
            "active_prescription_count",
            "document_count",
            "version",
            "created_at",
            "updated_at",
        ]

    def to_representation(self, instance: Patient) -> dict[str, Any]:
        data = super().to_representation(instance)
        projection = self.context.get(PROJECTION_CONTEXT) or patient_projection_narrowest()
        for name in projection.hidden:
            data.pop(name, None)
        return data


class PatientCreateInput(serializers.Serializer[Any]):
    facility = serializers.UUIDField()
    mrn = serializers.RegexField(rules.MRN_PATTERN, max_length=32)
    given_name = serializers.CharField(max_length=100)
    family_name = serializers.CharField(max_length=100)
    birth_date = serializers.DateField()
    sex = serializers.ChoiceField(choices=Sex.choices, default=Sex.UNKNOWN)
    phone = serializers.CharField(required=False, allow_blank=True, default="", max_length=40)
    sms_opt_in = serializers.BooleanField(required=False, default=False)
    assigned_clinician = serializers.UUIDField(required=False, allow_null=True, default=None)

    def validate_birth_date(self, value: Any) -> Any:
        try:
            rules.birth_date_check(birth_date=value, today=django_timezone.localdate())
        except RuleError as exc:
            raise serializers.ValidationError(exc.message) from None
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        try:
            rules.sms_consent_check(
                sms_opt_in=bool(attrs.get("sms_opt_in")), phone=attrs.get("phone") or ""
            )
        except RuleError as exc:
            raise exc.as_validation_error() from None
        return attrs


class PatientUpdateInput(PatientCreateInput):
    version = serializers.IntegerField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = False
            field.default = serializers.empty

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return attrs


# --- appointments ------------------------------------------------------------------------------


class AppointmentOutput(serializers.Serializer[Any]):
    """List and detail row. Times in UTC plus the same instants in the facility's time zone."""

    id = serializers.UUIDField()
    patient = serializers.DictField(help_text="{id, mrn, given_name, family_name}")
    clinician = UserBriefSerializer()
    facility = FacilityBriefSerializer()
    timezone = serializers.CharField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    starts_at_local = serializers.CharField()
    ends_at_local = serializers.CharField()
    status = serializers.ChoiceField(choices=AppointmentStatus.choices)
    reason = serializers.CharField()
    cancellation_reason = serializers.CharField()
    checked_in_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    cancelled_at = serializers.DateTimeField(allow_null=True)
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def to_representation(self, instance: Appointment) -> dict[str, Any]:
        facility = instance.facility
        patient = instance.patient
        zone = facility.timezone
        return {
            "id": str(instance.pk),
            "patient": {
                "id": str(patient.pk),
                "mrn": patient.mrn,
                "given_name": patient.given_name,
                "family_name": patient.family_name,
            },
            "clinician": user_brief(instance.clinician),
            "facility": {"id": str(facility.pk), "code": facility.code, "name": facility.name},
            "timezone": zone,
            "starts_at": utc(instance.starts_at),
            "ends_at": utc(instance.ends_at),
            "starts_at_local": local(instance.starts_at, zone),
            "ends_at_local": local(instance.ends_at, zone),
            "status": instance.status,
            "reason": instance.reason,
            "cancellation_reason": instance.cancellation_reason,
            "checked_in_at": utc(instance.checked_in_at),
            "completed_at": utc(instance.completed_at),
            "cancelled_at": utc(instance.cancelled_at),
            "version": instance.version,
            "created_at": utc(instance.created_at),
            "updated_at": utc(instance.updated_at),
        }


class AppointmentCreateInput(serializers.Serializer[Any]):
    patient = serializers.UUIDField()
    clinician = serializers.UUIDField()
    facility = serializers.UUIDField(
        required=False, help_text="Defaults to the patient's facility."
    )
    starts_at = serializers.CharField(
        help_text="ISO 8601; without an offset it is wall-clock time in the facility's zone."
    )
    ends_at = serializers.CharField(help_text="ISO 8601, after starts_at.")
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")


class AppointmentUpdateInput(serializers.Serializer[Any]):
    clinician = serializers.UUIDField(required=False)
    starts_at = serializers.CharField(required=False)
    ends_at = serializers.CharField(required=False)
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True)
    version = serializers.IntegerField(required=False)


class AppointmentCancelInput(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    version = serializers.IntegerField(required=False)


class AppointmentSummaryOutput(serializers.Serializer[Any]):
    total = serializers.IntegerField()
    scheduled = serializers.IntegerField()
    checked_in = serializers.IntegerField()
    completed = serializers.IntegerField()
    cancelled = serializers.IntegerField()
    no_show = serializers.IntegerField()


# --- prescriptions -----------------------------------------------------------------------------


class PrescriptionItemOutput(serializers.ModelSerializer[PrescriptionItem]):
    class Meta:
        model = PrescriptionItem
        fields = [
            "id",
            "position",
            "medication",
            "dose",
            "route",
            "frequency",
            "duration_days",
            "quantity",
        ]


class PrescriptionItemInput(serializers.Serializer[Any]):
    medication = serializers.CharField(max_length=200)
    dose = serializers.CharField(max_length=100)
    route = serializers.ChoiceField(choices=Route.choices)
    frequency = serializers.CharField(max_length=100)
    duration_days = serializers.IntegerField(min_value=1, max_value=365)
    quantity = serializers.IntegerField(min_value=1, max_value=10000)


class PrescriptionListOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    patient = serializers.DictField(help_text="{id, mrn, given_name, family_name}")
    prescriber = UserBriefSerializer()
    status = serializers.ChoiceField(choices=PrescriptionStatus.choices)
    item_count = serializers.IntegerField()
    version = serializers.IntegerField()
    created_at = serializers.DateTimeField()

    def to_representation(self, instance: Prescription) -> dict[str, Any]:
        patient = instance.patient
        return {
            "id": str(instance.pk),
            "patient": {
                "id": str(patient.pk),
                "mrn": patient.mrn,
                "given_name": patient.given_name,
                "family_name": patient.family_name,
            },
            "prescriber": user_brief(instance.prescriber),
            "status": instance.status,
            "item_count": getattr(instance, "item_count", 0),
            "version": instance.version,
            "created_at": utc(instance.created_at),
        }


class PrescriptionDetailOutput(serializers.ModelSerializer[Prescription]):
    patient = serializers.SerializerMethodField()
    prescriber = UserBriefSerializer()
    items = PrescriptionItemOutput(many=True)

    class Meta:
        model = Prescription
        fields = [
            "id",
            "patient",
            "prescriber",
            "appointment",
            "status",
            "notes",
            "items",
            "version",
            "created_at",
            "updated_at",
        ]

    def get_patient(self, instance: Prescription) -> dict[str, Any]:
        patient = instance.patient
        return {
            "id": str(patient.pk),
            "mrn": patient.mrn,
            "given_name": patient.given_name,
            "family_name": patient.family_name,
            "facility": str(patient.facility_id),
        }


class PrescriptionCreateInput(serializers.Serializer[Any]):
    patient = serializers.UUIDField()
    appointment = serializers.UUIDField(required=False, allow_null=True, default=None)
    notes = serializers.CharField(required=False, allow_blank=True, default="")
    items = PrescriptionItemInput(many=True, allow_empty=False, max_length=50)  # type: ignore[call-arg]


class PrescriptionUpdateInput(serializers.Serializer[Any]):
    status = serializers.ChoiceField(choices=PrescriptionStatus.choices, required=False)
    notes = serializers.CharField(required=False, allow_blank=True)
    items = PrescriptionItemInput(  # type: ignore[call-arg]
        many=True,
        allow_empty=False,
        max_length=50,
        required=False,
        help_text=(
            "When present, REPLACES the whole item set: items left out are deleted, the ones "
            "given are created anew (new ids), in one transaction."
        ),
    )
    version = serializers.IntegerField(required=False)


# --- documents ---------------------------------------------------------------------------------


class DocumentOutput(serializers.ModelSerializer[PatientDocument]):
    class Meta:
        model = PatientDocument
        fields = [
            "id",
            "patient",
            "title",
            "content_type",
            "size",
            "sha256",
            "original_name",
            "version",
            "created_at",
        ]


class DocumentUploadInput(serializers.Serializer[Any]):
    file = serializers.FileField()
    title = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
