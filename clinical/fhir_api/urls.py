"""The FHIR base's routes, mounted at ``/fhir/R4/`` on the hosts of tenant kinds with the
clinical domain (settings/urls.py). FHIR URLs have no trailing slash (``[base]/Patient/123``).
Add routes above the final catch-all, which answers any other path with a 404 OperationOutcome
(the Bulk Data ``$export`` routes go here too: ``$`` is not in a FHIR id, so
``Patient/$export`` never matches a read)."""

from __future__ import annotations

from typing import Any

from django.urls import include, path, re_path, register_converter

from clinical.fhir_api import views
from clinical.fhir_api.outcome import fhir_not_found


class FhirIdConverter:
    """A FHIR ``id``: letters, digits, '-' and '.', 1 to 64 of them."""

    regex = r"[A-Za-z0-9\-.]{1,64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(FhirIdConverter, "fhirid")

_READ = {"get": "read"}
_SEARCH = {"get": "search"}
_RESOURCES: tuple[tuple[str, Any], ...] = (
    ("Patient", views.PatientFhirViewSet),
    ("Appointment", views.AppointmentFhirViewSet),
    ("Practitioner", views.PractitionerFhirViewSet),
    ("Location", views.LocationFhirViewSet),
    ("Organization", views.OrganizationFhirViewSet),
)


def _resource_routes() -> list[Any]:
    routes = []
    for name, viewset in _RESOURCES:
        routes += [
            path(name, viewset.as_view(_SEARCH), name=f"fhir-{name.lower()}-search"),
            path(f"{name}/<fhirid:pk>", viewset.as_view(_READ), name=f"fhir-{name.lower()}-read"),
        ]
    return routes


urlpatterns: list[Any] = [
    path("metadata", views.CapabilityStatementView.as_view(), name=views.METADATA_ROUTE),
    # Bulk Data $export (clinical/bulkdata), included by name: bulkdata imports this package.
    path("", include("clinical.bulkdata.urls")),
    *_resource_routes(),
    # Last: any other path under the base (routes added later go above this line).
    re_path(r"^.*$", fhir_not_found),
]
