"""Uploads: size cap, type from the bytes, tenant-prefixed server-side names, scoped downloads."""

import base64
import struct
import zlib
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import tenant_context

from tests.apikit.conftest import ITEM_ID, STAFF_PASSWORD, ToyWorld, make_staff
from tests.apikit.toy.models import Attachment
from tests.apikit.toy.views import MAX_ATTACHMENT_BYTES
from tests.conftest import login

pytestmark = pytest.mark.urls("tests.apikit.urls")
URL = f"/api/v1/toy/items/{ITEM_ID}/attachments/"

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////"
    "////////////////////////////////////wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAAA//EABQQAQAA"
    "AAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AN//Z"
)


def _png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


def _upload(client: object, name: str, content: bytes, content_type: str) -> object:
    file = SimpleUploadedFile(name, content, content_type=content_type)
    return client.post(URL, {"file": file}, format="multipart")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "content", "sniffed"),
    [
        ("scan.pdf", PDF, "application/pdf"),
        ("x-ray.png", _png(), "image/png"),
        ("photo.jpg", JPEG, "image/jpeg"),
    ],
)
def test_accepted_types_are_stored_under_the_tenant_and_downloadable(
    toy_alpha: ToyWorld, name: str, content: bytes, sniffed: str
) -> None:
    client = login(toy_alpha.world)
    # The client's Content-Type is wrong on purpose: only the bytes count.
    response = _upload(client, f"../../etc/{name}", content, "text/plain")
    assert response.status_code == 201, response.content  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert body["content_type"] == sniffed
    assert body["size"] == len(content)
    assert body["original_name"] == name
    with tenant_context(toy_alpha.world.tenant):
        stored = Attachment.objects.get(pk=body["id"])
    assert stored.path.startswith("t_alpha/toy-attachments/")
    assert name not in stored.path
    assert (Path(settings.MEDIA_ROOT) / stored.path).read_bytes() == content

    download = client.get(f"{URL}{body['id']}/download/")
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == content  # type: ignore[attr-defined]
    assert download["Content-Type"] == sniffed
    assert download["Content-Disposition"] == f'attachment; filename="{name}"'
    assert download["X-Content-Type-Options"] == "nosniff"


def test_a_renamed_non_document_is_refused_with_415(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    for content in (b"MZ\x90\x00\x03" + b"\x00" * 100, b"just text pretending to be a pdf"):
        response = _upload(client, "report.pdf", content, "application/pdf")
        assert response.status_code == 415  # type: ignore[attr-defined]
        assert response.json()["error"]["code"] == "unsupported_file_type"  # type: ignore[attr-defined]
    with tenant_context(toy_alpha.world.tenant):
        assert not Attachment.objects.exists()


def test_too_large_or_empty_files_are_refused(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    big = _upload(client, "big.pdf", PDF + b"0" * MAX_ATTACHMENT_BYTES, "application/pdf")
    assert big.status_code == 413  # type: ignore[attr-defined]
    assert big.json()["error"]["code"] == "payload_too_large"  # type: ignore[attr-defined]
    empty = _upload(client, "empty.pdf", b"", "application/pdf")
    assert empty.status_code == 400  # type: ignore[attr-defined]
    assert empty.json()["error"]["fields"] == {"file": ["The submitted file is empty."]}  # type: ignore[attr-defined]


def test_downloads_follow_the_items_scope(toy_alpha: ToyWorld) -> None:
    attachment_id = _upload(login(toy_alpha.world), "scan.pdf", PDF, "application/pdf").json()["id"]  # type: ignore[attr-defined]
    make_staff(toy_alpha.world)
    staff = login(toy_alpha.world, email="staff@example.com", password=STAFF_PASSWORD)
    assert staff.get(f"{URL}{attachment_id}/download/").status_code == 404
    assert staff.get(URL).status_code == 404


def test_another_tenant_cannot_reach_the_file_by_id_or_by_path(
    toy_alpha: ToyWorld, toy_beta: ToyWorld
) -> None:
    attachment_id = _upload(login(toy_alpha.world), "scan.pdf", PDF, "application/pdf").json()["id"]  # type: ignore[attr-defined]
    beta = login(toy_beta.world)
    assert beta.get(f"{URL}{attachment_id}/download/").status_code == 404
    with tenant_context(toy_alpha.world.tenant):
        alpha_path = Attachment.objects.get(pk=attachment_id).path
    with tenant_context(toy_beta.world.tenant):
        forged = Attachment.objects.create(
            item=toy_beta.item,
            path=alpha_path,
            content_type="application/pdf",
            size=1,
            sha256="x",
            original_name="stolen.pdf",
        )
    response = beta.get(f"{URL}{forged.pk}/download/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
