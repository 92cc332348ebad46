"""Reads of the clinical domain: scoped querysets with every relation their serializers touch
fetched up front, ranked patient search and the appointment summary."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import phonenumbers
from django.conf import settings
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db.models import (
    Case,
    Count,
    F,
    IntegerField,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from apikit.policy import AccessLevel, scope_to_containers, visible_containers
from clinical.models import (
    Appointment,
    AppointmentStatus,
    Facility,
    Patient,
    PatientDocument,
    Prescription,
    PrescriptionItem,
    PrescriptionStatus,
)
from clinical.projection import PatientProjection, patient_projection

UPCOMING_APPOINTMENTS = 5
# The patient list row, declared once: each field of a row and the columns it is rendered from,
# fetched as dicts (one join, no model instances; the search vector is never loaded). The list
# fetches the columns of the fields the user's projection shows (clinical.projection), the list
# serializer renders the fields whose columns were fetched, and the ordering allowlist is made of
# these columns (the cursor reads the ordering column from the last row).
PATIENT_LIST_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "id": ("id",),
        "mrn": ("mrn",),
        "given_name": ("given_name",),
        "family_name": ("family_name",),
        "birth_date": ("birth_date",),
        "sex": ("sex",),
        "phone": ("phone",),
        "sms_opt_in": ("sms_opt_in",),
        "visit_count": ("visit_count",),
        "facility": ("facility_id", "facility__code", "facility__name"),
        "assigned_clinician": ("assigned_clinician_id", "assigned_clinician__full_name"),
        "version": ("version",),
        "updated_at": ("updated_at",),
    }
)
# Fetched for the cursor only (an ordering column that is not a field of the row).
_PATIENT_LIST_ORDERING_ONLY = ("created_at",)
# ``?ordering=`` of the patient list; a field the user's projection hides is refused (apikit).
PATIENT_ORDERING_FIELDS = (
    "family_name",
    "given_name",
    "birth_date",
    "mrn",
    "phone",
    "created_at",
    "updated_at",
    "visit_count",
)
_DIGITS = re.compile(r"\d")
_PHONE_TERM = re.compile(r"^\+?[\d\s().-]+$")


# --- facilities --------------------------------------------------------------------------------


def facility_list(*, user: Any, level: AccessLevel = AccessLevel.VIEW) -> QuerySet[Facility]:
    return visible_containers(user=user, container_model=Facility, level=level)


def facility_get_manageable(*, user: Any, facility_id: Any) -> Facility | None:
    return facility_list(user=user, level=AccessLevel.MANAGE).filter(pk=facility_id).first()


# --- patients ----------------------------------------------------------------------------------


def patient_scope(*, user: Any, level: AccessLevel = AccessLevel.VIEW) -> QuerySet[Patient]:
    return scope_to_containers(
        Patient.objects.defer("search_vector"),
        user=user,
        container_field="facility",
        container_model=Facility,
        level=level,
    )


def patient_list_columns(*, projection: PatientProjection) -> tuple[str, ...]:
    """The columns of a list row for ``projection``: a hidden field is never fetched."""
    shown = [
        column
        for name, columns in PATIENT_LIST_COLUMNS.items()
        if projection.shows(name)
        for column in columns
    ]
    return (*shown, *_PATIENT_LIST_ORDERING_ONLY)


def patient_list_queryset(*, user: Any) -> QuerySet[Any]:
    """The visible patients as dicts of the list columns the user's role may see."""
    projection = patient_projection(user=user)
    return patient_scope(user=user).values(*patient_list_columns(projection=projection))


def patient_detail_queryset(*, user: Any) -> QuerySet[Patient]:
    now = timezone.now()
    upcoming = (
        Appointment.objects.filter(
            starts_at__gte=now,
            status__in=[AppointmentStatus.SCHEDULED, AppointmentStatus.CHECKED_IN],
        )
        .select_related("clinician", "facility")
        .order_by("starts_at", "id")[:UPCOMING_APPOINTMENTS]
    )
    return (
        patient_scope(user=user)
        .select_related("facility", "assigned_clinician")
        .prefetch_related(Prefetch("appointments", queryset=upcoming, to_attr="upcoming"))
        .annotate(
            appointment_count=_count_of(Appointment, "patient"),
            active_prescription_count=_count_of(
                Prescription, "patient", status=PrescriptionStatus.ACTIVE
            ),
            document_count=_count_of(PatientDocument, "patient"),
        )
    )


def _count_of(model: Any, fk: str, **filters: Any) -> Coalesce:
    """A correlated COUNT: unlike joined Count()s, several of them never multiply each other."""
    counted = (
        model.objects.filter(**{fk: OuterRef("pk")}, **filters)
        .order_by()
        .values(fk)
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))


def _phone_numbers(term: str) -> set[str]:
    """The E.164 numbers a search term may name: the term read as a phone number in any notation
    (without a country code: in ``CLINICAL_DEFAULT_PHONE_REGION``) and, for a term of digits and
    phone punctuation only, ``+`` and its digits (E.164 typed without the ``+``, or after 00)."""
    digits = "".join(_DIGITS.findall(term))
    if len(digits) < 6:
        return set()
    numbers = set()
    try:
        number = phonenumbers.parse(term, getattr(settings, "CLINICAL_DEFAULT_PHONE_REGION", None))
    except phonenumbers.NumberParseException:
        pass
    else:
        numbers.add(str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)))
    if _PHONE_TERM.match(term):
        numbers.add(f"+{digits}")
        if digits.startswith("00"):
            numbers.add(f"+{digits[2:]}")
    return numbers


def patient_search(
    queryset: QuerySet[Any], *, term: str, projection: PatientProjection
) -> QuerySet[Any]:
    """Matches ranked: exact MRN or phone (0), name prefix (1), contains (2), full text (3); then
    the full-text rank, family name and id, so the order is total and stable.

    The phone is matched (exactly, as E.164 or its digits) only when ``projection`` shows it, and
    it is not in the full-text vector: a role that may not see phone numbers cannot find a
    patient by one."""
    term = term.strip()[:100]
    if not term:
        return queryset
    phones = _phone_numbers(term) if projection.shows("phone") else set()
    exact = Q(mrn__iexact=term) | (Q(phone__in=sorted(phones)) if phones else Q(pk__in=[]))
    prefix = Q(given_name__istartswith=term) | Q(family_name__istartswith=term)
    contains = (
        Q(given_name__icontains=term) | Q(family_name__icontains=term) | Q(mrn__icontains=term)
    )
    query = SearchQuery(term, config="simple", search_type="websearch")
    text = Q(search_vector=query)
    return (
        queryset.filter(exact | prefix | contains | text)
        .annotate(
            search_tier=Case(
                When(exact, then=Value(0)),
                When(prefix, then=Value(1)),
                When(contains, then=Value(2)),
                default=Value(3),
                output_field=IntegerField(),
            ),
            search_rank=SearchRank(F("search_vector"), query),
        )
        .order_by("search_tier", "-search_rank", "family_name", "given_name", "id")
    )


def patients_for_export(*, user: Any) -> QuerySet[Patient]:
    return patient_scope(user=user).order_by("id")


# --- appointments ------------------------------------------------------------------------------


def appointment_scope(*, user: Any) -> QuerySet[Appointment]:
    return scope_to_containers(
        Appointment.objects.all(), user=user, container_field="facility", container_model=Facility
    )


def appointment_list_queryset(*, user: Any) -> QuerySet[Appointment]:
    return (
        appointment_scope(user=user)
        .select_related("facility", "clinician", "patient")
        .defer("patient__search_vector")
    )


def appointment_summary(queryset: QuerySet[Appointment]) -> dict[str, int]:
    """Counts per status (every status present, zeros included) in one aggregate query."""
    counts = queryset.order_by().aggregate(
        total=Count("pk"),
        **{status: Count("pk", filter=Q(status=status)) for status in AppointmentStatus.values},
    )
    return {key: int(value or 0) for key, value in counts.items()}


# --- prescriptions -----------------------------------------------------------------------------


def prescription_scope(*, user: Any) -> QuerySet[Prescription]:
    return scope_to_containers(
        Prescription.objects.all(),
        user=user,
        container_field="patient__facility",
        container_model=Facility,
    )


def prescription_list_queryset(*, user: Any) -> QuerySet[Prescription]:
    return (
        prescription_scope(user=user)
        .select_related("patient", "prescriber")
        .defer("patient__search_vector")
        .annotate(item_count=_count_of(PrescriptionItem, "prescription"))
    )


def prescription_detail_queryset(*, user: Any) -> QuerySet[Prescription]:
    return (
        prescription_scope(user=user)
        .select_related("patient", "patient__facility", "prescriber")
        .defer("patient__search_vector")
        .prefetch_related(
            Prefetch("items", queryset=PrescriptionItem.objects.order_by("position", "id"))
        )
    )


# --- documents ---------------------------------------------------------------------------------


def document_list(*, patient: Patient) -> QuerySet[PatientDocument]:
    return PatientDocument.objects.filter(patient=patient).select_related("created_by")
