"""The OpenAPI document: served, complete about errors, and committed as docs/openapi.yaml."""

import io
from pathlib import Path

import yaml
from django.core.management import call_command

from tests.conftest import TenantWorld

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def _generated() -> str:
    out = io.StringIO()
    call_command("spectacular", api_version="v1", stdout=out)
    return out.getvalue()


def test_committed_schema_matches_the_code() -> None:
    assert COMMITTED.read_text() == _generated(), (
        "docs/openapi.yaml is out of date: run `make openapi` and commit the result."
    )


def test_every_operation_documents_the_error_envelope() -> None:
    schema = yaml.safe_load(_generated())
    assert "ErrorEnvelope" in schema["components"]["schemas"]
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            for status in ("429", "500"):
                ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorEnvelope", (method, path, status)
            if "{" in path:
                assert "404" in responses, (method, path)
            if method in {"post", "put", "patch"}:
                assert {"400", "413", "415"} <= set(responses), (method, path)


def test_idempotency_and_precondition_headers_are_documented() -> None:
    schema = yaml.safe_load(_generated())
    create_user = schema["paths"]["/api/v1/users/"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in create_user["parameters"]}
    assert {"409", "422"} <= set(create_user["responses"])
    change_user = schema["paths"]["/api/v1/users/{id}/"]["patch"]
    assert "If-Match" in {p["name"] for p in change_user["parameters"]}


def test_schema_and_swagger_ui_are_served_on_tenant_hosts(alpha: TenantWorld) -> None:
    client = alpha.client()
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert "/api/v1/users/" in schema.json()["paths"]
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html
    assert "cdn.jsdelivr.net" not in html  # assets come from the sidecar, not the internet
