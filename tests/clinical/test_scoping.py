"""Scope: a clinician granted facility F1 only sees nothing of F2 (404 everywhere, empty lists,
filters and search), view access is read-only, and two tenants with colliding ids never mix."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from apikit.policy import AccessLevel, container_access_grant
from clinical.models import Appointment, Patient, Prescription
from tests.clinical.conftest import (
    A1_ID,
    A2_ID,
    BASE_TIME,
    F1_ID,
    F2_ID,
    P1_ID,
    P2_ID,
    RX1_ID,
    RX2_ID,
    Clinic,
)
from tests.conftest import CLINICIAN_EMAIL, CLINICIAN_ID, login

API = "/api/v1/clinical"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def _ids(response: object) -> set[str]:
    return {row["id"] for row in response.json()["results"]}  # type: ignore[attr-defined]


def test_lists_show_only_granted_facilities(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    assert _ids(client.get(f"{API}/facilities/")) == {str(F1_ID)}
    assert _ids(client.get(f"{API}/patients/")) == {str(P1_ID)}
    assert _ids(client.get(f"{API}/appointments/")) == {str(A1_ID)}
    assert _ids(client.get(f"{API}/prescriptions/")) == {str(RX1_ID)}


def test_filters_and_search_cannot_reach_other_facilities(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    assert _ids(client.get(f"{API}/patients/", {"facility": str(F2_ID)})) == set()
    assert _ids(client.get(f"{API}/patients/", {"search": "Hopper"})) == set()
    assert _ids(client.get(f"{API}/patients/", {"search": "MRN-2"})) == set()
    assert _ids(client.get(f"{API}/appointments/", {"patient": str(P2_ID)})) == set()
    assert _ids(client.get(f"{API}/prescriptions/", {"patient": str(P2_ID)})) == set()
    assert client.get(f"{API}/appointments/summary/").json()["total"] == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", f"facilities/{F2_ID}/"),
        ("get", f"patients/{P2_ID}/"),
        ("patch", f"patients/{P2_ID}/"),
        ("put", f"patients/{P2_ID}/"),
        ("get", f"patients/{P2_ID}/fhir/"),
        ("get", f"patients/{P2_ID}/documents/"),
        ("post", f"patients/{P2_ID}/documents/"),
        ("get", f"appointments/{A2_ID}/"),
        ("patch", f"appointments/{A2_ID}/"),
        ("delete", f"appointments/{A2_ID}/"),
        ("post", f"appointments/{A2_ID}/cancel/"),
        ("post", f"appointments/{A2_ID}/check-in/"),
        ("post", f"appointments/{A2_ID}/complete/"),
        ("get", f"appointments/{A2_ID}/fhir/"),
        ("get", f"prescriptions/{RX2_ID}/"),
        ("patch", f"prescriptions/{RX2_ID}/"),
        ("delete", f"prescriptions/{RX2_ID}/"),
    ],
)
def test_other_facility_objects_are_404(clinic: Clinic, method: str, path: str) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    kwargs: dict[str, object] = {"format": "json", "data": {"given_name": "X"}}
    if path.endswith("documents/") and method == "post":
        kwargs = {"format": "multipart", "data": {"file": SimpleUploadedFile("a.pdf", PDF)}}
    response = getattr(client, method)(f"{API}/{path}", **kwargs)
    assert response.status_code == 404, (path, response.content)
    assert response.json()["error"]["code"] == "not_found"
    with tenant_context(clinic.world.tenant):
        assert Patient.objects.get(pk=P2_ID).given_name == "Grace"
        assert Appointment.objects.get(pk=A2_ID).status == "scheduled"
        assert Prescription.objects.filter(pk=RX2_ID).exists()


@pytest.mark.parametrize(
    ("method", "f1_path", "f2_path"),
    [
        ("patch", f"facilities/{F1_ID}/", f"facilities/{F2_ID}/"),
        ("delete", f"facilities/{F1_ID}/", f"facilities/{F2_ID}/"),
        ("delete", f"patients/{P1_ID}/", f"patients/{P2_ID}/"),
    ],
)
def test_role_refusals_look_the_same_inside_and_outside_scope(
    clinic: Clinic, method: str, f1_path: str, f2_path: str
) -> None:
    """The role check runs before any lookup: a 403 here reveals nothing about F2."""
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    inside = getattr(client, method)(f"{API}/{f1_path}", {"name": "X"}, format="json")
    outside = getattr(client, method)(f"{API}/{f2_path}", {"name": "X"}, format="json")
    assert inside.status_code == outside.status_code == 403
    assert inside.json() == outside.json()


def test_creating_under_another_facility_is_refused(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    patient = client.post(
        f"{API}/patients/",
        {
            "facility": str(F2_ID),
            "mrn": "NEW-1",
            "given_name": "A",
            "family_name": "B",
            "birth_date": "2000-01-01",
        },
        format="json",
    )
    assert patient.status_code == 400
    assert "facility" in patient.json()["error"]["fields"]
    start = BASE_TIME + timedelta(days=4)
    appointment = client.post(
        f"{API}/appointments/",
        {
            "patient": str(P2_ID),
            "clinician": str(CLINICIAN_ID),
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(minutes=20)).isoformat(),
        },
        format="json",
    )
    assert appointment.status_code == 400
    assert "patient" in appointment.json()["error"]["fields"]
    prescription = client.post(
        f"{API}/prescriptions/",
        {
            "patient": str(P2_ID),
            "items": [
                {
                    "medication": "A",
                    "dose": "1",
                    "route": "oral",
                    "frequency": "daily",
                    "duration_days": 1,
                    "quantity": 1,
                }
            ],
        },
        format="json",
    )
    assert prescription.status_code == 400
    with tenant_context(clinic.world.tenant):
        assert not Patient.objects.filter(mrn="NEW-1").exists()
        assert Appointment.objects.count() == 2
        assert Prescription.objects.count() == 2


def test_view_access_is_read_only(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        container_access_grant(user=clinic.clinician, container=clinic.f2, level=AccessLevel.VIEW)
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    assert client.get(f"{API}/patients/{P2_ID}/").status_code == 200
    patch = client.patch(f"{API}/patients/{P2_ID}/", {"given_name": "X"}, format="json")
    assert patch.status_code == 403
    assert client.post(f"{API}/appointments/{A2_ID}/cancel/").status_code == 403
    assert _ids(client.get(f"{API}/patients/")) == {str(P1_ID), str(P2_ID)}
    with tenant_context(clinic.world.tenant):
        assert Patient.objects.get(pk=P2_ID).given_name == "Grace"


def test_tenants_with_colliding_ids_stay_apart(clinic: Clinic, clinic_beta: Clinic) -> None:
    with tenant_context(clinic_beta.world.tenant):
        Patient.objects.filter(pk=P1_ID).update(given_name="Beta-only")
    alpha = login(clinic.world, email=CLINICIAN_EMAIL)
    beta = login(clinic_beta.world, email=CLINICIAN_EMAIL)
    assert alpha.get(f"{API}/patients/{P1_ID}/").json()["given_name"] == "Ada"
    assert beta.get(f"{API}/patients/{P1_ID}/").json()["given_name"] == "Beta-only"
    # Alpha's change lands in alpha only.
    alpha.post(f"{API}/appointments/{A1_ID}/cancel/")
    with tenant_context(clinic_beta.world.tenant):
        assert Appointment.objects.get(pk=A1_ID).status == "scheduled"
    # A token from one tenant is refused on the other's host.
    token = alpha._credentials["HTTP_AUTHORIZATION"]  # type: ignore[attr-defined]
    crossed = clinic_beta.world.client()
    crossed.credentials(HTTP_AUTHORIZATION=token)
    assert crossed.get(f"{API}/patients/{P1_ID}/").status_code == 401
    assert crossed.get(f"{API}/fhir/export/").status_code == 401


def test_tenant_admin_sees_everything(clinic: Clinic) -> None:
    client = login(clinic.world)
    assert _ids(client.get(f"{API}/patients/")) == {str(P1_ID), str(P2_ID)}
    assert _ids(client.get(f"{API}/facilities/")) == {str(F1_ID), str(F2_ID)}
