"""Clinical endpoints, all on the apikit base viewset: thin actions that validate input, find the
objects in the user's scope and call services."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, ClassVar, cast

from django.db.models import QuerySet
from django.http import FileResponse, Http404, StreamingHttpResponse
from django_tenants.utils import schema_context
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotAcceptable, PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from apikit.filters import FilterSetBackend, StrictOrderingFilter
from apikit.ids import parse_uuid
from apikit.inputs import validated
from apikit.json import dumps
from apikit.media import accepts, negotiated_media_type, produces
from apikit.models import TenantModel
from apikit.policy import AccessLevel, can_manage, sees_everything
from apikit.request_context import request_context
from apikit.rules import RuleError
from apikit.tenancy import current_schema_name
from apikit.uploads import DOCUMENT_TYPES, stored_file_response
from apikit.viewsets import ListMixin, RetrieveMixin, TenantScopedViewSet
from audit.models import AuditEvent
from audit.services import audit_changed_fields, audit_event_record, audit_object_type
from clinical import rules, selectors, services
from clinical.api import serializers as io
from clinical.api.filters import (
    AppointmentFilter,
    FacilityFilter,
    PatientFilter,
    PrescriptionFilter,
    RankedPatientSearch,
)
from clinical.api.pagination import SearchAwarePagination
from clinical.api.reminders import AppointmentDetailOutput
from clinical.fhir import resources
from clinical.fhir.selectors import builder_rows
from clinical.fhir_api.outcome import FHIR_JSON
from clinical.models import (
    Appointment,
    Facility,
    Patient,
    PatientDocument,
    Prescription,
)
from clinical.projection import PatientProjection, patient_projection

CANNOT_MANAGE = "You may view this facility's records but not change them (view access only)."
FACILITY_NOT_MANAGEABLE = "No such facility, or you cannot manage it."
PATIENT_NOT_MANAGEABLE = "No such patient, or you cannot manage their facility."
USER_NOT_FOUND = "No such active user in this organisation."
APPOINTMENT_NOT_OF_PATIENT = "This appointment belongs to another patient."
HARD_DELETE_ADMIN_ONLY = "Only a tenant admin may delete records for good."
EXPORT_ADMIN_ONLY = "Only a tenant admin may export every patient."
HARD_PARAM = "hard"
FHIR_NDJSON = "application/fhir+ndjson"
EXPORT_CHUNK = 500

_HARD_DELETE_PARAMETER = OpenApiParameter(
    HARD_PARAM,
    OpenApiTypes.BOOL,
    description=(
        "true: delete for good instead of archiving (tenant_admin only); 409 object_referenced "
        "with the count of referencing rows when anything still points at the object."
    ),
)


def _active_clinician(value: Any, *, field: str) -> User:
    """The user ``value`` names if they may be booked (``clinical.rules.clinician_check``), else
    a 400 on ``field``."""
    user = User.objects.filter(pk=value).first()
    try:
        rules.clinician_check(
            role=getattr(user, "role", None),
            is_active=bool(getattr(user, "is_active", False)),
            field=field,
        )
    except RuleError as exc:
        raise exc.as_validation_error() from None
    return cast(User, user)  # the rule refuses a missing user


class ClinicalViewSet(TenantScopedViewSet):
    """Shared helpers: the manage check on the owning facility, and archive-or-hard delete."""

    def schema_generation(self) -> bool:
        """drf-spectacular inspects views without a real user; it gets an empty queryset."""
        return bool(getattr(self, "swagger_fake_view", False))

    def require_manage(self, facility: Facility) -> None:
        if not can_manage(user=self.request.user, container=facility):
            raise PermissionDenied(CANNOT_MANAGE)

    def manageable_facility(self, facility_id: Any, *, field: str = "facility") -> Facility:
        found = selectors.facility_get_manageable(user=self.request.user, facility_id=facility_id)
        if found is None:
            raise ValidationError({field: [FACILITY_NOT_MANAGEABLE]})
        return found

    def wants_hard_delete(self) -> bool:
        hard = self.request.query_params.get(HARD_PARAM, "").lower() in {"1", "true", "yes"}
        if hard and not sees_everything(self.request.user):
            raise PermissionDenied(HARD_DELETE_ADMIN_ONLY)
        return hard

    def delete_or_archive(self, instance: TenantModel, archive: Any) -> Response:
        if self.wants_hard_delete():
            self.expected_version(instance)
            services.hard_delete(instance=instance)
        else:
            archive(expected_version=self.expected_version(instance), actor=self.request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- facilities --------------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(responses=io.FacilityOutput(many=True)))
class FacilityViewSet(ListMixin, RetrieveMixin, ClinicalViewSet):
    serializer_class = io.FacilityOutput
    model = Facility
    list_serializer_class = io.FacilityOutput
    detail_serializer_class = io.FacilityOutput
    filterset_class = FacilityFilter
    ordering_fields: ClassVar[list[str]] = ["name", "code", "created_at"]
    cursor_ordering = "-id"
    required_permissions: ClassVar[dict[str, str | None]] = {
        "access": "clinical.change_facility",
    }

    def scoped_queryset(self) -> QuerySet[Facility]:
        if self.schema_generation():
            return Facility.objects.none()
        return selectors.facility_list(user=self.request.user)

    @extend_schema(request=io.FacilityCreateInput, responses={201: io.FacilityOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(io.FacilityCreateInput, request.data)
        facility = services.facility_create(actor=request.user, **data)
        return self.detail_response(facility, io.FacilityOutput, status=status.HTTP_201_CREATED)

    @extend_schema(request=io.FacilityUpdateInput, responses={200: io.FacilityOutput})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        facility = self.get_object()
        self.require_manage(facility)
        expected = self.expected_version(facility)
        data = validated(io.FacilityUpdateInput, request.data)
        data.pop("version", None)
        self.audit_changed_fields = audit_changed_fields(instance=facility, changes=data)
        facility = services.facility_update(
            facility=facility, expected_version=expected, changes=data, actor=request.user
        )
        return self.detail_response(facility, io.FacilityOutput)

    @extend_schema(parameters=[_HARD_DELETE_PARAMETER], responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        facility = self.get_object()
        self.require_manage(facility)
        return self.delete_or_archive(
            facility,
            lambda **kw: services.facility_archive(facility=facility, **kw),
        )

    @extend_schema(
        methods=["GET"],
        request=None,
        responses={200: io.FacilityAccessOutput(many=True)},
        summary="List a facility's access grants",
        description="Who holds `view` or `manage` on this facility (tenant_admin only).",
    )
    @extend_schema(
        methods=["POST"],
        request=io.FacilityAccessInput,
        responses={200: io.FacilityAccessOutput(many=True)},
        summary="Grant access to a facility",
        description=(
            "Grant `view` or `manage` on this facility to a user (tenant_admin only; audited as "
            "permission_change). Answers the current grants."
        ),
    )
    @extend_schema(
        methods=["DELETE"],
        request=None,
        parameters=[
            OpenApiParameter(
                "user", OpenApiTypes.UUID, required=True, description="The user's id."
            ),
            OpenApiParameter(
                "level",
                OpenApiTypes.STR,
                enum=[level.value for level in AccessLevel],
                required=True,
                description="The level to take away.",
            ),
        ],
        responses={200: io.FacilityAccessOutput(many=True)},
        summary="Revoke access to a facility",
        description=(
            "Take `view` or `manage` on this facility away from a user, named in the query "
            "(`?user=&level=`; a JSON body is accepted too). tenant_admin only; audited as "
            "permission_change. Answers the remaining grants."
        ),
    )
    # Not paginated: the grants of one facility are a plain list (and documented as one).
    @action(detail=True, methods=["get", "post", "delete"], pagination_class=None)
    def access(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        facility = self.get_object()
        if not sees_everything(request.user):
            raise PermissionDenied("Only a tenant admin may change facility access.")
        if request.method != "GET":
            data = validated(io.FacilityAccessInput, request.data or request.query_params)
            user = User.objects.filter(pk=data["user"], is_active=True).first()
            if user is None:
                raise ValidationError({"user": [USER_NOT_FOUND]})
            services.facility_access_change(
                facility=facility,
                user=user,
                level=AccessLevel(data["level"]),
                grant=request.method == "POST",
                context=request_context(request),
            )
            self.audit_changed_fields = ["access"]
        return Response(_grants(facility))


def _grants(facility: Facility) -> list[dict[str, Any]]:
    from guardian.shortcuts import get_users_with_perms

    granted: dict[Any, list[str]] = get_users_with_perms(  # type: ignore[assignment]
        facility, attach_perms=True, with_superusers=False, with_group_users=False
    )
    rows = []
    for user, perms in sorted(granted.items(), key=lambda pair: pair[0].email):
        levels = sorted(level.value for level in AccessLevel if f"{level.value}_facility" in perms)
        rows.append({"user": io.user_brief(user), "email": user.email, "levels": levels})
    return rows


# --- patients ----------------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(responses=io.PatientListOutput(many=True)))
class PatientViewSet(ListMixin, RetrieveMixin, ClinicalViewSet):
    serializer_class = io.PatientDetailOutput
    model = Patient
    list_serializer_class = io.PatientListOutput
    detail_serializer_class = io.PatientDetailOutput
    filterset_class = PatientFilter
    filter_backends = (FilterSetBackend, StrictOrderingFilter, RankedPatientSearch)
    pagination_class = SearchAwarePagination
    # Every role's allowlist; the fields its projection hides are taken out (hidden_fields).
    ordering_fields: ClassVar[list[str]] = list(selectors.PATIENT_ORDERING_FIELDS)
    cursor_ordering = "-id"
    required_permissions: ClassVar[dict[str, str | None]] = {"fhir": "clinical.view_patient"}

    def projection(self) -> PatientProjection:
        return patient_projection(user=self.request.user)

    def hidden_fields(self) -> frozenset[str]:
        """Ordering, filters and the ETag follow the user's projection (clinical.projection)."""
        return self.projection().hidden

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), io.PROJECTION_CONTEXT: self.projection()}

    def scoped_queryset(self) -> QuerySet[Any]:
        if self.schema_generation():
            return Patient.objects.none()
        user = self.request.user
        if self.action == "list":
            # Dicts of the list columns the user's role may see.
            return selectors.patient_list_queryset(user=user)
        if self.action == "retrieve":
            return selectors.patient_detail_queryset(user=user)
        return selectors.patient_scope(user=user).select_related("facility", "assigned_clinician")

    def _fresh(self, patient: Patient) -> Patient:
        return selectors.patient_detail_queryset(user=self.request.user).get(pk=patient.pk)

    def _clinician(self, value: Any) -> User | None:
        return None if value is None else _active_clinician(value, field="assigned_clinician")

    @extend_schema(request=io.PatientCreateInput, responses={201: io.PatientDetailOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(io.PatientCreateInput, request.data)
        facility = self.manageable_facility(data.pop("facility"))
        clinician = self._clinician(data.pop("assigned_clinician"))
        patient = services.patient_create(
            facility=facility, assigned_clinician=clinician, actor=request.user, **data
        )
        return self.detail_response(
            self._fresh(patient), io.PatientDetailOutput, status=status.HTTP_201_CREATED
        )

    def _change(self, request: Request, *, partial: bool) -> Response:
        patient = self.get_object()
        self.require_manage(patient.facility)
        expected = self.expected_version(patient)
        serializer = (io.PatientUpdateInput if partial else io.PatientCreateInput)(
            data=request.data
        )
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        data.pop("version", None)
        if "facility" in data:
            data["facility"] = self.manageable_facility(data["facility"])
        if "assigned_clinician" in data:
            data["assigned_clinician"] = self._clinician(data["assigned_clinician"])
        self.audit_changed_fields = audit_changed_fields(instance=patient, changes=data)
        patient = services.patient_update(
            patient=patient, expected_version=expected, changes=data, actor=request.user
        )
        return self.detail_response(self._fresh(patient), io.PatientDetailOutput)

    @extend_schema(request=io.PatientCreateInput, responses={200: io.PatientDetailOutput})
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._change(request, partial=False)

    @extend_schema(request=io.PatientUpdateInput, responses={200: io.PatientDetailOutput})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._change(request, partial=True)

    @extend_schema(parameters=[_HARD_DELETE_PARAMETER], responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        patient = self.get_object()
        self.require_manage(patient.facility)
        return self.delete_or_archive(
            patient, lambda **kw: services.patient_archive(patient=patient, **kw)
        )

    @produces(FHIR_JSON, "application/json", json_body=True, description="A FHIR R4 Patient.")
    @action(detail=True, methods=["get"])
    def fhir(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """This patient as a FHIR R4 Patient resource (``application/fhir+json``, or
        ``application/json`` when asked for), with the fields your role may see."""
        patient = self.get_object()
        return Response(
            resources.patient_resource(
                patient=patient,
                projection=self.projection(),
                tenant=request.tenant,  # type: ignore[attr-defined]  # django-tenants
            )
        )


class FhirExportViewSet(ClinicalViewSet):
    serializer_class = io.PatientListOutput
    """``GET fhir/export/``: every patient as FHIR NDJSON, streamed (constant memory)."""

    model = Patient
    required_permissions: ClassVar[dict[str, str | None]] = {"export": "clinical.view_patient"}

    def scoped_queryset(self) -> QuerySet[Patient]:
        if self.schema_generation():
            return Patient.objects.none()
        return selectors.patients_for_export(user=self.request.user)

    @produces(
        FHIR_NDJSON,
        "application/ndjson",
        description="One FHIR R4 Patient per line, streamed.",
    )
    def export(self, request: Request, *args: Any, **kwargs: Any) -> StreamingHttpResponse:
        """Every patient of the organisation as FHIR R4 NDJSON, streamed (tenant_admin only):
        ``application/fhir+ndjson`` or ``application/ndjson``, whichever ``Accept`` names."""
        if not sees_everything(request.user):
            raise PermissionDenied(EXPORT_ADMIN_ONLY)
        response = StreamingHttpResponse(
            _ndjson(
                queryset=self.scoped_queryset(),
                schema=current_schema_name(),
                context=request_context(request),
                projection=patient_projection(user=request.user),
                tenant=request.tenant,  # type: ignore[attr-defined]  # django-tenants
            ),
            content_type=negotiated_media_type(request, FHIR_NDJSON),
        )
        response["Content-Disposition"] = 'attachment; filename="patients.ndjson"'
        response["Cache-Control"] = "private, no-store"
        return response


def _ndjson(
    *,
    queryset: QuerySet[Patient],
    schema: str,
    context: Any,
    projection: PatientProjection,
    tenant: Any,
) -> Iterator[bytes]:
    """Keyset chunks (id > last), each its own short query in the tenant's schema: memory stays
    flat and no server-side cursor is held open while a slow client reads. Each chunk is
    audited as an export of exactly the ids it holds."""
    last: uuid.UUID | None = None
    while True:
        with schema_context(schema):
            chunk_qs = queryset if last is None else queryset.filter(pk__gt=last)
            # The builder's own typed rows, as the Bulk export fetches them.
            chunk = [
                resources.PatientValues._make(row)
                for row in builder_rows(chunk_qs, resources.PatientValues)[:EXPORT_CHUNK]
            ]
            if not chunk:
                return
            audit_event_record(
                context=context,
                action=AuditEvent.Action.EXPORT,
                object_type=audit_object_type(Patient),
                object_ids=[patient.id for patient in chunk],
            )
        yield b"".join(
            dumps(resources.patient_resource(patient=p, projection=projection, tenant=tenant))
            + b"\n"
            for p in chunk
        )
        last = chunk[-1].id


# --- appointments ------------------------------------------------------------------------------


@extend_schema_view(
    list=extend_schema(responses=io.AppointmentOutput(many=True)),
    retrieve=extend_schema(responses=AppointmentDetailOutput),
)
class AppointmentViewSet(ListMixin, RetrieveMixin, ClinicalViewSet):
    serializer_class = io.AppointmentOutput
    model = Appointment
    list_serializer_class = io.AppointmentOutput
    # The detail adds the appointment's reminders (clinical/api/reminders.py).
    detail_serializer_class = AppointmentDetailOutput
    filterset_class = AppointmentFilter
    ordering_fields: ClassVar[list[str]] = ["starts_at", "ends_at", "created_at", "updated_at"]
    cursor_ordering = "-id"
    required_permissions: ClassVar[dict[str, str | None]] = {
        "cancel": "clinical.change_appointment",
        "check_in": "clinical.change_appointment",
        "complete": "clinical.change_appointment",
        "no_show": "clinical.change_appointment",
        "summary": "clinical.view_appointment",
        "fhir": "clinical.view_appointment",
    }

    def scoped_queryset(self) -> QuerySet[Appointment]:
        if self.schema_generation():
            return Appointment.objects.none()
        return selectors.appointment_list_queryset(user=self.request.user)

    def _fresh(self, appointment: Appointment) -> Appointment:
        return selectors.appointment_list_queryset(user=self.request.user).get(pk=appointment.pk)

    def _clinician(self, value: Any) -> User:
        return _active_clinician(value, field="clinician")

    def _times(self, data: dict[str, Any], zone: str) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        for name in ("starts_at", "ends_at"):
            if name in data:
                try:
                    data[name] = io.parse_local_datetime(data[name], zone=zone)
                except serializers.ValidationError as error:
                    errors[name] = [str(message) for message in error.detail]
        if errors:
            raise ValidationError(errors)
        return data

    @extend_schema(request=io.AppointmentCreateInput, responses={201: io.AppointmentOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(io.AppointmentCreateInput, request.data)
        patient = (
            selectors.patient_scope(user=request.user, level=AccessLevel.MANAGE)
            .select_related("facility")
            .filter(pk=data.pop("patient"))
            .first()
        )
        if patient is None:
            raise ValidationError({"patient": [PATIENT_NOT_MANAGEABLE]})
        facility_id = data.pop("facility", None)
        facility = (
            self.manageable_facility(facility_id)
            if facility_id and facility_id != patient.facility_id
            else patient.facility
        )
        clinician = self._clinician(data.pop("clinician"))
        data = self._times(data, facility.timezone)
        appointment = services.appointment_create(
            patient=patient, clinician=clinician, facility=facility, actor=request.user, **data
        )
        return self.detail_response(
            self._fresh(appointment), io.AppointmentOutput, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=io.AppointmentUpdateInput, responses={200: io.AppointmentOutput})
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        appointment = self.get_object()
        self.require_manage(appointment.facility)
        expected = self.expected_version(appointment)
        data = validated(io.AppointmentUpdateInput, request.data)
        data.pop("version", None)
        if "clinician" in data:
            data["clinician"] = self._clinician(data["clinician"])
        data = self._times(data, appointment.facility.timezone)
        self.audit_changed_fields = audit_changed_fields(instance=appointment, changes=data)
        appointment = services.appointment_update(
            appointment=appointment, expected_version=expected, changes=data, actor=request.user
        )
        return self.detail_response(self._fresh(appointment), io.AppointmentOutput)

    @extend_schema(parameters=[_HARD_DELETE_PARAMETER], responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        appointment = self.get_object()
        self.require_manage(appointment.facility)
        return self.delete_or_archive(
            appointment,
            lambda **kw: services.appointment_archive(appointment=appointment, **kw),
        )

    def _transition(self, request: Request, name: str) -> Response:
        appointment = self.get_object()
        self.require_manage(appointment.facility)
        expected = self.expected_version(appointment)
        data = validated(io.AppointmentCancelInput, request.data or {})
        self.audit_changed_fields = ["status"]
        appointment = services.appointment_transition(
            appointment=appointment,
            action=name,
            expected_version=expected,
            actor=request.user,
            reason=data.get("reason", "") if name == "cancel" else "",
        )
        return self.detail_response(self._fresh(appointment), io.AppointmentOutput)

    @extend_schema(request=io.AppointmentCancelInput, responses={200: io.AppointmentOutput})
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Cancel the appointment (with an optional reason); its reminders are withdrawn. 409
        invalid_transition once it is completed."""
        return self._transition(request, "cancel")

    @extend_schema(request=None, responses={200: io.AppointmentOutput})
    @action(detail=True, methods=["post"], url_path="check-in")
    def check_in(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Record that the patient has arrived (scheduled -> checked_in)."""
        return self._transition(request, "check_in")

    @extend_schema(request=None, responses={200: io.AppointmentOutput})
    @action(detail=True, methods=["post"])
    def complete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Close the visit (checked_in -> completed); counts towards the patient's visits."""
        return self._transition(request, "complete")

    @extend_schema(request=None, responses={200: io.AppointmentOutput})
    @action(detail=True, methods=["post"], url_path="no-show")
    def no_show(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Record that the patient did not come (scheduled -> no_show)."""
        return self._transition(request, "no_show")

    @extend_schema(responses={200: io.AppointmentSummaryOutput})
    @action(detail=False, methods=["get"])
    def summary(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Counts by status over the filtered appointments (same filters as the list)."""
        queryset = self.filter_queryset(self.get_queryset())
        return Response(selectors.appointment_summary(queryset))

    @produces(FHIR_JSON, "application/json", json_body=True, description="A FHIR R4 Appointment.")
    @action(detail=True, methods=["get"])
    def fhir(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """This appointment as a FHIR R4 Appointment resource (``application/fhir+json``, or
        ``application/json`` when asked for)."""
        appointment = self.get_object()
        return Response(resources.appointment_resource(appointment=appointment))


# --- prescriptions -----------------------------------------------------------------------------


@extend_schema_view(list=extend_schema(responses=io.PrescriptionListOutput(many=True)))
class PrescriptionViewSet(ListMixin, RetrieveMixin, ClinicalViewSet):
    serializer_class = io.PrescriptionDetailOutput
    model = Prescription
    list_serializer_class = io.PrescriptionListOutput
    detail_serializer_class = io.PrescriptionDetailOutput
    filterset_class = PrescriptionFilter
    ordering_fields: ClassVar[list[str]] = ["created_at", "updated_at"]
    cursor_ordering = "-id"

    def scoped_queryset(self) -> QuerySet[Prescription]:
        if self.schema_generation():
            return Prescription.objects.none()
        if self.action == "list":
            return selectors.prescription_list_queryset(user=self.request.user)
        return selectors.prescription_detail_queryset(user=self.request.user)

    def _fresh(self, prescription: Prescription) -> Prescription:
        return selectors.prescription_detail_queryset(user=self.request.user).get(
            pk=prescription.pk
        )

    @extend_schema(request=io.PrescriptionCreateInput, responses={201: io.PrescriptionDetailOutput})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        data = validated(io.PrescriptionCreateInput, request.data)
        patient = (
            selectors.patient_scope(user=request.user, level=AccessLevel.MANAGE)
            .filter(pk=data.pop("patient"))
            .first()
        )
        if patient is None:
            raise ValidationError({"patient": [PATIENT_NOT_MANAGEABLE]})
        appointment_id = data.pop("appointment")
        appointment = None
        if appointment_id is not None:
            appointment = Appointment.objects.filter(pk=appointment_id, patient=patient).first()
            if appointment is None:
                raise ValidationError({"appointment": [APPOINTMENT_NOT_OF_PATIENT]})
        prescription = services.prescription_create(
            patient=patient,
            prescriber=request.user,
            appointment=appointment,
            actor=request.user,
            **data,
        )
        return self.detail_response(
            self._fresh(prescription), io.PrescriptionDetailOutput, status=status.HTTP_201_CREATED
        )

    def _change(self, request: Request) -> Response:
        prescription = self.get_object()
        self.require_manage(prescription.patient.facility)
        expected = self.expected_version(prescription)
        data = validated(io.PrescriptionUpdateInput, request.data)
        data.pop("version", None)
        items = data.pop("items", None)
        changed = audit_changed_fields(instance=prescription, changes=data)
        self.audit_changed_fields = changed + (["items"] if items is not None else [])
        prescription = services.prescription_update(
            prescription=prescription,
            expected_version=expected,
            changes=data,
            items=items,
            actor=request.user,
        )
        return self.detail_response(self._fresh(prescription), io.PrescriptionDetailOutput)

    @extend_schema(
        request=io.PrescriptionUpdateInput,
        responses={200: io.PrescriptionDetailOutput},
        description="Replace the prescription; its `items` replace the whole item set atomically.",
    )
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._change(request)

    @extend_schema(
        request=io.PrescriptionUpdateInput,
        responses={200: io.PrescriptionDetailOutput},
        description="Change the fields you send; `items`, when given, replaces the whole item "
        "set atomically.",
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self._change(request)

    @extend_schema(parameters=[_HARD_DELETE_PARAMETER], responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        prescription = self.get_object()
        self.require_manage(prescription.patient.facility)
        return self.delete_or_archive(
            prescription,
            lambda **kw: services.prescription_archive(prescription=prescription, **kw),
        )


# --- documents ---------------------------------------------------------------------------------


class PatientDocumentViewSet(ListMixin, ClinicalViewSet):
    serializer_class = io.DocumentOutput
    """Documents under a patient: list, upload, download, archive; all through the patient's
    scope (a patient outside it is 404, and so is every document of theirs)."""

    model = PatientDocument
    list_serializer_class = io.DocumentOutput
    cursor_ordering = "-id"
    ordering_fields: ClassVar[list[str]] = ["created_at"]
    parser_classes = (MultiPartParser,)
    max_body_bytes = services.DOCUMENT_MAX_BYTES + 64 * 1024
    required_permissions: ClassVar[dict[str, str | None]] = {
        "list": "clinical.view_patientdocument",
        "upload": "clinical.add_patientdocument",
        "download": "clinical.view_patientdocument",
        "destroy": "clinical.delete_patientdocument",
    }

    def _patient(self) -> Patient:
        patient_id = parse_uuid(self.kwargs.get("patient_pk"))
        patient = (
            selectors.patient_scope(user=self.request.user)
            .select_related("facility")
            .filter(pk=patient_id)
            .first()
            if patient_id
            else None
        )
        if patient is None:
            raise Http404
        return patient

    def scoped_queryset(self) -> QuerySet[PatientDocument]:
        if self.schema_generation():
            return PatientDocument.objects.none()
        return selectors.document_list(patient=self._patient())

    @extend_schema(
        request={"multipart/form-data": io.DocumentUploadInput}, responses={201: io.DocumentOutput}
    )
    def upload(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Upload a document for this patient (multipart: ``file`` and ``title``): PDF, PNG or
        JPEG, told by its bytes, not its name; 413 above the size cap, 415 for other types."""
        patient = self._patient()
        self.require_manage(patient.facility)
        data = validated(io.DocumentUploadInput, request.data)
        document = services.document_create(
            patient=patient, upload=data["file"], title=data["title"], actor=request.user
        )
        return self.detail_response(document, io.DocumentOutput, status=status.HTTP_201_CREATED)

    # The stored file's sniffed type (services.DOCUMENT_TYPES), not a generic octet-stream.
    @produces(
        *DOCUMENT_TYPES,
        description="The file, as the type sniffed from its bytes at upload.",
    )
    def download(self, request: Request, *args: Any, **kwargs: Any) -> FileResponse:
        """The document's file (PDF, PNG or JPEG, as sniffed from its bytes at upload). 406
        when ``Accept`` rules out this document's type (e.g. ``image/png`` for a PDF)."""
        document = self.get_object()
        if not accepts(request, document.content_type):
            raise NotAcceptable(
                f"This document is {document.content_type}; accept it (or */*) to download it."
            )
        return stored_file_response(
            path=document.path, content_type=document.content_type, filename=document.original_name
        )

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        document = self.get_object()
        self.require_manage(document.patient.facility)
        services.document_archive(
            document=document, expected_version=self.expected_version(document), actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
