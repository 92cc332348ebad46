"""Routes under /api/<version>/clinical/."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from clinical.api import views
from clinical.api.reminders import ReminderPreviewView, ReminderSettingsViewSet, ReminderViewSet

router = SimpleRouter()
router.register("facilities", views.FacilityViewSet, basename="clinical-facility")
router.register("patients", views.PatientViewSet, basename="clinical-patient")
router.register("appointments", views.AppointmentViewSet, basename="clinical-appointment")
router.register("prescriptions", views.PrescriptionViewSet, basename="clinical-prescription")
router.register("reminders", ReminderViewSet, basename="clinical-reminder")

documents = views.PatientDocumentViewSet
urlpatterns = [
    # Before the router: its reminders/<pk>/ would take "settings" for an id.
    path(
        "reminders/settings/",
        ReminderSettingsViewSet.as_view({"get": "retrieve", "put": "update"}),
        name="clinical-reminder-settings",
    ),
    path(
        "reminders/settings/preview/",
        ReminderPreviewView.as_view(),
        name="clinical-reminder-settings-preview",
    ),
    path(
        "fhir/export/",
        views.FhirExportViewSet.as_view({"get": "export"}),
        name="clinical-fhir-export",
    ),
    path(
        "patients/<str:patient_pk>/documents/",
        documents.as_view({"get": "list", "post": "upload"}),
        name="clinical-patient-documents",
    ),
    path(
        "patients/<str:patient_pk>/documents/<str:pk>/",
        documents.as_view({"delete": "destroy"}),
        name="clinical-patient-document",
    ),
    path(
        "patients/<str:patient_pk>/documents/<str:pk>/download/",
        documents.as_view({"get": "download"}),
        name="clinical-patient-document-download",
    ),
    path("", include(router.urls)),
]
