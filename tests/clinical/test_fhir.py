# mypy: disable-error-code="index,union-attr,attr-defined,type-var"
"""FHIR R4 output, validated with fhir.resources' R4B models, and the streamed NDJSON export."""

from __future__ import annotations

import json

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context
from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.patient import Patient as FhirPatient

from audit.models import AuditEvent
from clinical.models import Patient
from tests.clinical.conftest import A1_ID, P1_ID, P2_ID, Clinic, make_patient
from tests.conftest import CLINICIAN_EMAIL, login

API = "/api/v1/clinical"


def test_patient_resource_validates(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        Patient.objects.filter(pk=P1_ID).update(
            phone="+4915123456789", assigned_clinician=clinic.clinician
        )
    response = login(clinic.world).get(f"{API}/patients/{P1_ID}/fhir/")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+json"
    resource = FhirPatient.model_validate(response.json())
    assert resource.id == str(P1_ID)
    assert resource.gender == "female"
    assert resource.identifier[0].value == "MRN-1"
    assert resource.telecom[0].value == "+4915123456789"
    assert resource.generalPractitioner[0].reference == f"Practitioner/{clinic.clinician.pk}"


def test_appointment_resource_validates_in_every_status(clinic: Clinic) -> None:
    client = login(clinic.world)
    statuses = []
    for step in (None, "check-in", "complete"):
        if step:
            client.post(f"{API}/appointments/{A1_ID}/{step}/")
        response = client.get(f"{API}/appointments/{A1_ID}/fhir/")
        assert response.status_code == 200
        resource = FhirAppointment.model_validate(response.json())
        statuses.append(resource.status)
        assert resource.participant[0].actor.reference == f"Patient/{P1_ID}"
    assert statuses == ["booked", "checked-in", "fulfilled"]
    client.post(f"{API}/appointments/{clinic.a2.pk}/cancel/", {"reason": "ill"}, format="json")
    cancelled = FhirAppointment.model_validate(
        client.get(f"{API}/appointments/{clinic.a2.pk}/fhir/").json()
    )
    assert cancelled.status == "cancelled"
    assert cancelled.cancelationReason.text == "ill"


def test_export_streams_every_patient_as_ndjson(clinic: Clinic) -> None:
    from clinical.api import views

    with tenant_context(clinic.world.tenant):
        for i in range(7):
            make_patient(facility=clinic.f1, mrn=f"EX-{i}")
    original = views.EXPORT_CHUNK
    views.EXPORT_CHUNK = 3  # several chunks from a few rows
    try:
        response = login(clinic.world).get(f"{API}/fhir/export/")
        assert response.status_code == 200
        assert response.streaming
        assert response["Content-Type"] == "application/fhir+ndjson"
        with CaptureQueriesContext(connection) as captured:
            chunks = list(response.streaming_content)
    finally:
        views.EXPORT_CHUNK = original
    lines = b"".join(chunks).decode().splitlines()
    assert len(lines) == 9
    assert len(chunks) == 3
    ids = [FhirPatient.model_validate(json.loads(line)).id for line in lines]
    assert ids == sorted(ids)
    assert {str(P1_ID), str(P2_ID)} <= set(ids)
    selects = [q for q in captured.captured_queries if 'FROM "clinical_patient"' in q["sql"]]
    assert len(selects) == 4  # three chunks of <= 3 rows, and the empty one that ends it
    with tenant_context(clinic.world.tenant):
        exported = AuditEvent.objects.filter(action="export", object_type="clinical.patient")
        assert sum(len(event.object_ids) for event in exported) == 9


def test_export_is_tenant_admin_only(clinic: Clinic) -> None:
    response = login(clinic.world, email=CLINICIAN_EMAIL).get(f"{API}/fhir/export/")
    assert response.status_code == 403
    assert clinic.world.client().get(f"{API}/fhir/export/").status_code == 401
