"""Issue 21, item 6: a download is named with the extension of the type sniffed from its bytes.

A PDF/HTML polyglot uploaded as ``invoice.html`` is stored as application/pdf; served as
``invoice.html`` a browser or desktop would open the saved file as HTML (the script runs from
the file system, or the user is told it is a web page). It must download as ``invoice.pdf``,
typed application/pdf, with nosniff and as an attachment, never cached.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.security.conftest import SecurityWorld
from tests.security.world import SHARED

pytestmark = pytest.mark.security

P1 = SHARED["clinical.patient"]
DOCUMENTS = f"/api/v1/clinical/patients/{P1}/documents/"
POLYGLOT = (
    b"%PDF-1.4\n"
    b"<html><body><script>alert(document.domain)</script></body></html>\n"
    b"1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _upload(sw: SecurityWorld, name: str, content: bytes, content_type: str) -> dict[str, Any]:
    response = sw.client(sw.a, "tenant_admin").post(
        DOCUMENTS,
        {"file": SimpleUploadedFile(name, content, content_type), "title": "polyglot"},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def _download(sw: SecurityWorld, document_id: str, role: str = "tenant_admin") -> Any:
    response = sw.client(sw.a, role).get(f"{DOCUMENTS}{document_id}/download/")
    assert response.status_code == 200, response
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return response, body


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("invoice.html", "invoice.pdf"),
        ("invoice.htm", "invoice.pdf"),
        ("invoice.svg", "invoice.pdf"),
        ("invoice", "invoice.pdf"),
        ("invoice.pdf.html", "invoice.pdf"),
        ("INVOICE.PDF", "INVOICE.pdf"),
        (".html", "download.pdf"),
    ],
)
def test_a_polyglot_downloads_with_the_sniffed_extension(
    sw: SecurityWorld, name: str, expected: str
) -> None:
    document = _upload(sw, name, POLYGLOT, "text/html")
    assert document["content_type"] == "application/pdf"
    response, body = _download(sw, document["id"])
    assert body == POLYGLOT
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="{expected}"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Cache-Control"] == "private, no-store"


def test_every_role_that_may_download_gets_the_sniffed_name(sw: SecurityWorld) -> None:
    document = _upload(sw, "invoice.html", POLYGLOT, "text/html")
    for role in ("tenant_admin", "clinician", "nurse"):
        response, _ = _download(sw, document["id"], role)
        assert response["Content-Disposition"] == 'attachment; filename="invoice.pdf"', role


def test_the_uploaders_name_is_still_shown_as_metadata(sw: SecurityWorld) -> None:
    """The original name stays visible in the listing (it is what the user called the file);
    only the saved file's extension follows the bytes."""
    document = _upload(sw, "invoice.html", POLYGLOT, "text/html")
    assert document["original_name"] == "invoice.html"
