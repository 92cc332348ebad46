"""The FHIR R4 REST base: read and search-type for Patient, Appointment, Practitioner, Location
and Organization, on apikit's base viewset.

Scoping, role permissions, the role projection and the read audit are the REST API's own: the
querysets are ``clinical.selectors``' (the same the REST viewsets use), the base viewset checks
tenant membership and the role matrix, and audits every page and object read exactly as it does
for ``/api/v1/clinical/``. Only the representation differs (``clinical.fhir.resources``), with
FHIR's media types and OperationOutcome errors (``negotiation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

from django.db.models import Model, QuerySet
from django.http import HttpResponse, HttpResponseNotModified
from django.urls import reverse
from django.utils.http import http_date
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from apikit import conditional
from apikit.viewsets import TenantScopedViewSet
from clinical import selectors
from clinical.fhir import resources as fhir
from clinical.fhir.selectors import practitioner_scope
from clinical.fhir_api import params
from clinical.fhir_api.capability import capability_statement
from clinical.fhir_api.negotiation import FhirNegotiationMixin
from clinical.fhir_api.paging import BundlePagination
from clinical.fhir_api.search import search_apply, strict_handling
from clinical.models import Appointment, Facility, Patient
from clinical.projection import PatientProjection, patient_projection
from tenants.models import Tenant

METADATA_ROUTE = "fhir-metadata"
# Anyone who may read a patient or an appointment may read what it references.
_CLINICAL_READ = "clinical.view_patient"


def fhir_base_url(request: Request) -> str:
    """The absolute base of this tenant host's FHIR API (``…/fhir/R4``, no trailing slash)."""
    return request.build_absolute_uri(reverse(METADATA_ROUTE)).removesuffix("/metadata")


@dataclass(frozen=True)
class _Versioned:
    """What apikit's ETag helpers read of an object: its version."""

    version: str


class FhirResourceViewSet(FhirNegotiationMixin, TenantScopedViewSet):
    """``read`` (GET [type]/[id]) and ``search`` (GET [type]) of one resource type."""

    resource_type: ClassVar[str]
    pagination_class = BundlePagination
    # Searching is FHIR's (search_params); no REST filter backend runs here.
    filter_backends = ()

    def tenant(self) -> Tenant:
        return cast(Tenant, self.request.tenant)  # type: ignore[attr-defined]

    def build(self, obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def search_params(self) -> params.Params:
        raise NotImplementedError

    def last_modified(self, obj: Any) -> Any:
        return obj.updated_at

    # --- read ------------------------------------------------------------------------------

    def read(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        obj = self.get_object()  # scoped (404 outside the user's scope) and audited
        resource = self.build(obj)
        versioned = cast(Any, _Versioned(resource["meta"]["versionId"]))
        hidden = self.hidden_fields()
        etag = conditional.etag_for(versioned, hidden=hidden)
        if conditional.is_not_modified(request, versioned, hidden=hidden):
            not_modified = HttpResponseNotModified()
            not_modified["ETag"] = etag
            return not_modified
        headers = {"ETag": etag, "Last-Modified": http_date(self.last_modified(obj).timestamp())}
        return Response(resource, headers=headers)

    # --- search ------------------------------------------------------------------------------

    def search(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        found = search_apply(
            self.get_queryset(),
            params=dict(request.query_params.lists()),
            spec=self.search_params(),
            strict=strict_handling(request.headers.get("Prefer", "")),
        )
        type_url = f"{fhir_base_url(request)}/{self.resource_type}"
        paginator = cast(BundlePagination, self.paginator)
        paginator.applied = found.applied
        paginator.base_url = type_url
        page = self.paginate_queryset(found.queryset) or []  # audited by the base viewset
        entries = []
        for obj in page:
            resource = self.build(obj)
            entries.append(
                {
                    "fullUrl": f"{type_url}/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
            )
        return self.get_paginated_response(entries)


class PatientFhirViewSet(FhirResourceViewSet):
    model = Patient
    resource_type = fhir.PATIENT
    required_permissions: ClassVar[dict[str, str | None]] = {
        "read": "clinical.view_patient",
        "search": "clinical.view_patient",
    }

    def projection(self) -> PatientProjection:
        return patient_projection(user=self.request.user)

    def hidden_fields(self) -> frozenset[str]:
        return self.projection().hidden

    def scoped_queryset(self) -> QuerySet[Patient]:
        return selectors.patient_scope(user=self.request.user)

    def search_params(self) -> params.Params:
        return params.patient_params(tenant=self.tenant(), projection=self.projection())

    def build(self, obj: Patient) -> dict[str, Any]:
        return fhir.patient_resource(
            patient=obj, projection=self.projection(), tenant=self.tenant()
        )


class AppointmentFhirViewSet(FhirResourceViewSet):
    model = Appointment
    resource_type = fhir.APPOINTMENT
    required_permissions: ClassVar[dict[str, str | None]] = {
        "read": "clinical.view_appointment",
        "search": "clinical.view_appointment",
    }

    def scoped_queryset(self) -> QuerySet[Appointment]:
        return selectors.appointment_scope(user=self.request.user)

    def search_params(self) -> params.Params:
        return params.appointment_params()

    def build(self, obj: Appointment) -> dict[str, Any]:
        return fhir.appointment_resource(appointment=obj)


class PractitionerFhirViewSet(FhirResourceViewSet):
    model = User
    resource_type = fhir.PRACTITIONER
    required_permissions: ClassVar[dict[str, str | None]] = {
        "read": _CLINICAL_READ,
        "search": _CLINICAL_READ,
    }

    def scoped_queryset(self) -> QuerySet[User]:
        return practitioner_scope(user=self.request.user)

    def search_params(self) -> params.Params:
        return params.practitioner_params()

    def build(self, obj: User) -> dict[str, Any]:
        return fhir.practitioner_resource(user=obj)


class LocationFhirViewSet(FhirResourceViewSet):
    model = Facility
    resource_type = fhir.LOCATION
    required_permissions: ClassVar[dict[str, str | None]] = {
        "read": "clinical.view_facility",
        "search": "clinical.view_facility",
    }

    def scoped_queryset(self) -> QuerySet[Facility]:
        # The facilities the user may view: those of every patient and appointment they can read.
        return selectors.facility_list(user=self.request.user)

    def search_params(self) -> params.Params:
        return params.location_params(tenant=self.tenant())

    def build(self, obj: Facility) -> dict[str, Any]:
        return fhir.location_resource(facility=obj, tenant=self.tenant())


class OrganizationFhirViewSet(FhirResourceViewSet):
    """The tenant itself: the one Organization of this base (id: the tenant's slug)."""

    model = cast(type[Model], Tenant)
    resource_type = fhir.ORGANIZATION
    lookup_field = "slug"
    lookup_url_kwarg = "pk"
    required_permissions: ClassVar[dict[str, str | None]] = {
        "read": _CLINICAL_READ,
        "search": _CLINICAL_READ,
    }

    def scoped_queryset(self) -> QuerySet[Tenant]:
        return Tenant.objects.filter(pk=self.tenant().pk)

    def search_params(self) -> params.Params:
        return params.organization_params()

    def build(self, obj: Tenant) -> dict[str, Any]:
        return fhir.organization_resource(tenant=obj)


class CapabilityStatementView(FhirNegotiationMixin, APIView):
    """``GET [base]/metadata``: no token needed (and a bad one is not looked at)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        tenant = cast(Tenant, request.tenant)  # type: ignore[attr-defined]
        return Response(
            capability_statement(tenant=tenant, base_url=fhir_base_url(request)),
            headers={"Cache-Control": "public, max-age=300"},
        )
