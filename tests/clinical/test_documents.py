"""Patient documents: PDF / PNG / JPEG up to 10 MB, type from the bytes, scoped list and
download, archive."""

from __future__ import annotations

import base64

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from clinical import services
from clinical.models import PatientDocument
from tests.clinical.conftest import P1_ID, Clinic
from tests.conftest import CLINICIAN_EMAIL, login
from tests.query_budget import assert_constant_queries

URL = f"/api/v1/clinical/patients/{P1_ID}/documents/"
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC"
)
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////"
    "////////////////////////////////////wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAAA//EABQQAQAA"
    "AAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AN//Z"
)


def _upload(client: object, name: str, content: bytes, **extra: str) -> object:
    file = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    return client.post(URL, {"file": file, **extra}, format="multipart")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "content", "sniffed"),
    [
        ("lab.pdf", PDF, "application/pdf"),
        ("scan.png", PNG, "image/png"),
        ("x.jpg", JPEG, "image/jpeg"),
    ],
)
def test_upload_list_download(clinic: Clinic, name: str, content: bytes, sniffed: str) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    response = _upload(client, name, content, title="Lab result")
    assert response.status_code == 201, response.content  # type: ignore[attr-defined]
    document = response.json()  # type: ignore[attr-defined]
    assert document["content_type"] == sniffed
    assert document["title"] == "Lab result"
    listed = client.get(URL).json()
    assert [row["id"] for row in listed["results"]] == [document["id"]]
    download = client.get(f"{URL}{document['id']}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == content  # type: ignore[attr-defined]
    assert download["Content-Type"] == sniffed


def test_type_comes_from_the_bytes(clinic: Clinic) -> None:
    client = login(clinic.world)
    response = _upload(client, "evil.pdf", b"MZ\x90\x00 this is an executable")
    assert response.status_code == 415  # type: ignore[attr-defined]
    assert response.json()["error"]["code"] == "unsupported_file_type"  # type: ignore[attr-defined]
    with tenant_context(clinic.world.tenant):
        assert not PatientDocument.objects.exists()


def test_empty_and_missing_files_are_400(clinic: Clinic) -> None:
    client = login(clinic.world)
    assert _upload(client, "empty.pdf", b"").status_code == 400  # type: ignore[attr-defined]
    assert client.post(URL, {}, format="multipart").status_code == 400


def test_files_over_10_mb_are_413(clinic: Clinic) -> None:
    client = login(clinic.world)
    big = PDF + b"0" * services.DOCUMENT_MAX_BYTES
    response = _upload(client, "big.pdf", big)
    assert response.status_code == 413  # type: ignore[attr-defined]
    with tenant_context(clinic.world.tenant):
        assert not PatientDocument.objects.exists()


def test_documents_are_scoped_to_the_patient(clinic: Clinic) -> None:
    admin = login(clinic.world)
    document = _upload(admin, "lab.pdf", PDF).json()  # type: ignore[attr-defined]
    other = f"/api/v1/clinical/patients/{clinic.p2.pk}/documents/"
    assert admin.get(f"{other}{document['id']}/download/").status_code == 404
    assert admin.get("/api/v1/clinical/patients/not-a-uuid/documents/").status_code == 404


def test_archive(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    document = _upload(client, "lab.pdf", PDF).json()  # type: ignore[attr-defined]
    assert client.delete(f"{URL}{document['id']}/").status_code == 204
    assert client.get(URL).json()["results"] == []
    assert client.get(f"{URL}{document['id']}/download/").status_code == 404


def test_list_query_count_is_constant(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)

    def add_rows(n: int) -> None:
        with tenant_context(clinic.world.tenant):
            for i in range(n):
                PatientDocument.objects.create(
                    patient=clinic.p1,
                    path=f"t_alpha/x/{i}.pdf",
                    content_type="application/pdf",
                    size=1,
                    sha256="0" * 64,
                    original_name=f"{i}.pdf",
                    created_by=clinic.clinician,
                )

    assert_constant_queries(
        fetch=lambda: client.get(URL, {"page_size": 100}),
        add_rows=add_rows,
        expected_rows=lambda r: len(r.json()["results"]),
    )
