"""Fast regression tests for what the schema fuzzer found undocumented (the fuzzer itself is the
slow check): every operation documents the statuses any request can meet, and responses are
documented with the content types and shapes the server really sends."""

from __future__ import annotations

import io
from typing import Any

import pytest
import yaml
from django.core.management import call_command


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    out = io.StringIO()
    call_command("spectacular", api_version="v1", stdout=out)
    loaded: dict[str, Any] = yaml.safe_load(out.getvalue())
    return loaded


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "post", "put", "patch", "delete"}
    ]


def test_every_operation_documents_400_401_403_and_503(document: dict[str, Any]) -> None:
    """Login and webhooks answer 401 / 403 too, a suspended tenant or a database outage reaches
    every route, and ?ordering= / ?cursor= are checked on detail and nested routes (400)."""
    for method, path, operation in operations(document):
        expected = {"400", "401", "403", "429", "500", "503"}
        assert expected <= set(operation["responses"]), (method, path)


def test_validation_fields_may_be_nested(document: dict[str, Any]) -> None:
    fields = document["components"]["schemas"]["Error"]["properties"]["fields"]
    assert fields["additionalProperties"] == {}, fields


def test_fhir_and_downloads_document_their_real_content_types(document: dict[str, Any]) -> None:
    paths = document["paths"]
    for path in (
        "/api/v1/clinical/patients/{id}/fhir/",
        "/api/v1/clinical/appointments/{id}/fhir/",
    ):
        # application/json too: FHIR R4 accepts it, and it is JSON (issue 17, item 4).
        assert set(paths[path]["get"]["responses"]["200"]["content"]) == {
            "application/fhir+json",
            "application/json",
        }
    download = paths["/api/v1/clinical/patients/{patient_pk}/documents/{id}/download/"]["get"]
    assert set(download["responses"]["200"]["content"]) == {
        "application/pdf",
        "image/png",
        "image/jpeg",
    }


def test_plain_lists_are_not_documented_as_pages(document: dict[str, Any]) -> None:
    access = document["paths"]["/api/v1/clinical/facilities/{id}/access/"]["get"]
    schema = access["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema["type"] == "array", schema
    prescriptions = document["paths"]["/api/v1/clinical/prescriptions/"]["get"]
    page = prescriptions["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert page.endswith("PaginatedPrescriptionListOutputList"), page


def test_conditional_reads_document_304(document: dict[str, Any]) -> None:
    """Found by the fuzzer: If-None-Match is documented on detail reads, its 304 was not."""
    for path in ("/api/v1/clinical/patients/{id}/", "/api/v1/farms/fields/{id}/"):
        responses = document["paths"][path]["get"]["responses"]
        assert "304" in responses
        assert "content" not in responses["304"]
    # Actions that never answer 304 do not claim to.
    assert (
        "304" not in document["paths"]["/api/v1/clinical/patients/{id}/fhir/"]["get"]["responses"]
    )
