"""FilterSets and the ranked patient search of the clinical API. Invalid values answer 400."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django_filters import rest_framework as filters
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request

from apikit.rules import RuleError
from clinical import rules
from clinical.models import (
    Appointment,
    AppointmentStatus,
    Facility,
    Patient,
    Prescription,
    PrescriptionStatus,
    Sex,
)
from clinical.projection import patient_projection
from clinical.selectors import patient_search

SEARCH_PARAM = "search"


class FacilityFilter(filters.FilterSet):
    code = filters.CharFilter(field_name="code", lookup_expr="iexact")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Facility
        fields = ["code", "timezone"]


class PatientFilter(filters.FilterSet):
    facility = filters.UUIDFilter(field_name="facility_id")
    assigned_clinician = filters.UUIDFilter(field_name="assigned_clinician_id")
    sex = filters.ChoiceFilter(choices=Sex.choices)
    born_after = filters.DateFilter(field_name="birth_date", lookup_expr="gte")
    born_before = filters.DateFilter(field_name="birth_date", lookup_expr="lte")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")
    sms_opt_in = filters.BooleanFilter()
    # Roles that may not see phone numbers get a 400 for it (apikit.filters, hidden_fields).
    phone = filters.CharFilter(
        field_name="phone",
        method="filter_phone",
        help_text=(
            "Exact phone number, any international notation. Only for roles that may see "
            "patients' phone numbers (400 for the others)."
        ),
    )

    class Meta:
        model = Patient
        fields = ["facility", "assigned_clinician", "sex", "sms_opt_in", "phone"]

    def filter_phone(self, queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        try:
            phone = rules.phone_normalise(phone=value)
        except RuleError as exc:
            raise exc.as_validation_error() from None
        return queryset.filter(**{name: phone})


class AppointmentFilter(filters.FilterSet):
    facility = filters.UUIDFilter(field_name="facility_id")
    clinician = filters.UUIDFilter(field_name="clinician_id")
    patient = filters.UUIDFilter(field_name="patient_id")
    status = filters.MultipleChoiceFilter(choices=AppointmentStatus.choices)
    starts_after = filters.IsoDateTimeFilter(field_name="starts_at", lookup_expr="gte")
    starts_before = filters.IsoDateTimeFilter(field_name="starts_at", lookup_expr="lt")
    date_from = filters.DateFilter(field_name="starts_at", lookup_expr="date__gte")
    date_to = filters.DateFilter(field_name="starts_at", lookup_expr="date__lte")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Appointment
        fields = ["facility", "clinician", "patient", "status"]


class PrescriptionFilter(filters.FilterSet):
    patient = filters.UUIDFilter(field_name="patient_id")
    prescriber = filters.UUIDFilter(field_name="prescriber_id")
    facility = filters.UUIDFilter(field_name="patient__facility_id")
    status = filters.MultipleChoiceFilter(choices=PrescriptionStatus.choices)
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    updated_since = filters.IsoDateTimeFilter(field_name="updated_at", lookup_expr="gte")

    class Meta:
        model = Prescription
        fields = ["patient", "prescriber", "status"]


class RankedPatientSearch(BaseFilterBackend):
    """``?search=``: exact MRN or phone first, then name prefix, then contains, then full text.
    The rank decides the order unless the client asked for an explicit ``?ordering=``. The phone
    is matched only for roles whose projection shows it (clinical.projection)."""

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> Any:
        term = request.query_params.get(SEARCH_PARAM, "")
        if not term.strip():
            return queryset
        ranked = patient_search(
            queryset, term=term, projection=patient_projection(user=request.user)
        )
        if "ordering" in request.query_params:
            return ranked.order_by(*queryset.query.order_by, "id")
        return ranked

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": SEARCH_PARAM,
                "required": False,
                "in": "query",
                "description": (
                    "Ranked search: exact MRN or phone (phone only for roles that may see it), "
                    "then name prefix, then name / MRN contains, then full text (MRN and names). "
                    "Results come in rank order, page by page."
                ),
                "schema": {"type": "string"},
            }
        ]
