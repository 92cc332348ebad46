"""Content negotiation on the clinical endpoints whose body is not the API's JSON (issue 17, item
4): a document download, the FHIR resources and the NDJSON export accept their own media types
(and ``*/*``) in ``Accept``, answer 406 only when they truly cannot, and every error stays the
JSON envelope whatever was asked for. Two tenants hold the same ids throughout."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from clinical.models import Patient
from tests.clinical.conftest import A1_ID, P1_ID, Clinic
from tests.clinical.test_documents import PDF, PNG, URL, _upload
from tests.conftest import login

FHIR_JSON = "application/fhir+json"


def _envelope(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error: dict[str, Any] = json.loads(response.content)["error"]
    assert error["status"] == status
    assert error["code"] == code
    return error


def _body(response: Any) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return bytes(response.content)


def _document(clinic: Clinic, content: bytes, name: str) -> str:
    response = _upload(login(clinic.world), name, content, title=name)
    assert response.status_code == 201, response.content  # type: ignore[attr-defined]
    document_id: str = response.json()["id"]  # type: ignore[attr-defined]
    return document_id


@pytest.mark.parametrize(
    "accept",
    [
        "image/png",
        "image/*",
        "*/*",
        "image/png, application/pdf;q=0.5",
        "application/json;q=0.1, image/png",
        None,  # no Accept header: anything
    ],
)
def test_a_png_document_downloads_with_its_own_type(clinic: Clinic, accept: str | None) -> None:
    document = _document(clinic, PNG, "scan.png")
    client = login(clinic.world)
    url = f"{URL}{document}/download/"
    response = client.get(url) if accept is None else client.get(url, HTTP_ACCEPT=accept)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "image/png"
    assert _body(response) == PNG


@pytest.mark.parametrize("accept", ["application/pdf", "application/json", "text/html"])
def test_a_png_document_is_406_for_a_type_it_is_not(clinic: Clinic, accept: str) -> None:
    document = _document(clinic, PNG, "scan.png")
    response = login(clinic.world).get(f"{URL}{document}/download/", HTTP_ACCEPT=accept)
    _envelope(response, 406, "not_acceptable")


def test_a_pdf_document_downloads_as_pdf_and_refuses_q0(clinic: Clinic) -> None:
    document = _document(clinic, PDF, "lab.pdf")
    client = login(clinic.world)
    response = client.get(f"{URL}{document}/download/", HTTP_ACCEPT="application/pdf")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert _body(response) == PDF
    refused = client.get(f"{URL}{document}/download/", HTTP_ACCEPT="application/pdf;q=0, */*;q=0")
    _envelope(refused, 406, "not_acceptable")


def test_format_override_must_name_the_documents_type(clinic: Clinic) -> None:
    document = _document(clinic, PDF, "lab.pdf")
    client = login(clinic.world)
    response = client.get(f"{URL}{document}/download/?format=pdf")
    assert response.status_code == 200
    assert _body(response) == PDF
    _envelope(client.get(f"{URL}{document}/download/?format=png"), 406, "not_acceptable")


def test_errors_on_a_download_are_the_json_envelope(clinic: Clinic, clinic_beta: Clinic) -> None:
    """Beta's document id is unknown on alpha's host (404), and an anonymous caller is 401:
    both in JSON, even though the caller accepts PNG only."""
    beta_document = _document(clinic_beta, PNG, "beta.png")
    response = login(clinic.world).get(f"{URL}{beta_document}/download/", HTTP_ACCEPT="image/png")
    _envelope(response, 404, "not_found")
    anonymous = clinic.world.client().get(
        f"{URL}{beta_document}/download/", HTTP_ACCEPT="image/png"
    )
    assert anonymous.status_code == 401
    assert anonymous["Content-Type"] == "application/json"
    # Beta's own host serves it.
    own = login(clinic_beta.world).get(f"{URL}{beta_document}/download/", HTTP_ACCEPT="image/png")
    assert own.status_code == 200
    assert _body(own) == PNG


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        (FHIR_JSON, FHIR_JSON),
        (f"{FHIR_JSON}; fhirVersion=4.0", FHIR_JSON),
        ("application/json", "application/json"),
        ("*/*", FHIR_JSON),
    ],
)
@pytest.mark.parametrize(
    ("path", "resource_type"),
    [
        (f"/api/v1/clinical/patients/{P1_ID}/fhir/", "Patient"),
        (f"/api/v1/clinical/appointments/{A1_ID}/fhir/", "Appointment"),
    ],
)
def test_fhir_resources_accept_fhir_json(
    clinic: Clinic, path: str, resource_type: str, accept: str, content_type: str
) -> None:
    response = login(clinic.world).get(path, HTTP_ACCEPT=accept)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].split(";")[0] == content_type
    body = json.loads(response.content)
    assert body["resourceType"] == resource_type
    assert body["id"] == path.split("/")[-3]


def test_fhir_resource_refuses_other_types_in_json(clinic: Clinic) -> None:
    client = login(clinic.world)
    _envelope(
        client.get(f"/api/v1/clinical/patients/{P1_ID}/fhir/", HTTP_ACCEPT="application/xml"),
        406,
        "not_acceptable",
    )
    missing = client.get(
        "/api/v1/clinical/patients/01900000-0000-7000-8000-00000000dead/fhir/",
        HTTP_ACCEPT=FHIR_JSON,
    )
    _envelope(missing, 404, "not_found")


@pytest.mark.parametrize(
    ("accept", "query", "content_type"),
    [
        ("application/fhir+ndjson", "", "application/fhir+ndjson"),
        ("application/ndjson", "", "application/ndjson"),
        ("*/*", "", "application/fhir+ndjson"),
        ("*/*", "?format=ndjson", "application/ndjson"),
    ],
)
def test_ndjson_export_accepts_both_ndjson_types(
    clinic: Clinic, clinic_beta: Clinic, accept: str, query: str, content_type: str
) -> None:
    response = login(clinic.world).get(f"/api/v1/clinical/fhir/export/{query}", HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    lines = [json.loads(line) for line in _body(response).splitlines()]
    assert {line["id"] for line in lines} == {str(clinic.p1.pk), str(clinic.p2.pk)}
    # Beta holds patients with the same ids: its export has its own names, alpha's never them.
    with tenant_context(clinic_beta.world.tenant):
        Patient.objects.filter(pk=P1_ID).update(family_name="Betafamily")
    again = _body(
        login(clinic.world).get(f"/api/v1/clinical/fhir/export/{query}", HTTP_ACCEPT=accept)
    )
    assert b"Betafamily" not in again
    beta = login(clinic_beta.world).get(f"/api/v1/clinical/fhir/export/{query}", HTTP_ACCEPT=accept)
    assert beta["Content-Type"] == content_type
    assert b"Betafamily" in _body(beta)


def test_ndjson_export_refuses_json_with_the_envelope(clinic: Clinic) -> None:
    response = login(clinic.world).get(
        "/api/v1/clinical/fhir/export/", HTTP_ACCEPT="application/json"
    )
    _envelope(response, 406, "not_acceptable")


def test_an_unknown_format_is_406_not_404(clinic: Clinic) -> None:
    """DRF answers 404 for a ``?format=`` no renderer has; apikit's negotiation says 406."""
    client = login(clinic.world)
    error = _envelope(client.get("/api/v1/clinical/fhir/export/?format=xml"), 406, "not_acceptable")
    assert "fhir+ndjson" in error["detail"]
    _envelope(client.get("/api/v1/clinical/patients/?format=csv"), 406, "not_acceptable")
