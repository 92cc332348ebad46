"""Routes of the Bulk Data export, included by the FHIR base's URL conf (``/fhir/R4/``)."""

from django.urls import path

from clinical.bulkdata import views

urlpatterns = [
    path(
        "$export",
        views.BulkExportKickoffViewSet.as_view({"get": "system"}),
        name="fhir-bulk-export",
    ),
    path(
        "Patient/$export",
        views.BulkExportKickoffViewSet.as_view({"get": "patient"}),
        name="fhir-bulk-export-patient",
    ),
    path(
        "$export-status/<uuid:pk>",
        views.BulkExportStatusViewSet.as_view({"get": "status", "delete": "cancel"}),
        name="fhir-bulk-status",
    ),
    path(
        "$export-file/<uuid:pk>/<str:resource_type>.ndjson",
        views.BulkExportFileViewSet.as_view({"get": "download"}),
        name="fhir-bulk-file",
    ),
]
