"""Every 4xx/5xx answers in the one envelope (DESIGN.md section 5)."""

import logging
from typing import Any

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from apikit.errors import NO_SUCH_ENDPOINT
from tests.apikit.conftest import ITEM_ID, ToyWorld
from tests.conftest import TenantWorld, login

pytestmark = pytest.mark.urls("tests.apikit.urls")


def _assert_envelope(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert error["status"] == status
    assert error["code"] == code
    assert isinstance(error["detail"], str)
    assert error["detail"]
    return error


def test_unknown_route_is_404(alpha: TenantWorld) -> None:
    _assert_envelope(login(alpha).get("/api/v1/no/such/thing/"), 404, "not_found")
    _assert_envelope(alpha.client().get("/nothing-here"), 404, "not_found")


@pytest.fixture
def debug_on(settings: Any) -> None:
    """As under settings.dev (`make run`): Django's handler404 is not used with DEBUG on."""
    settings.DEBUG = True


@pytest.mark.parametrize(
    "path", ["/api/v1/nope/", "/api/v1/nope", "/api/v1/clinical/nope/", "/api/", "/api/nope"]
)
@pytest.mark.usefixtures("debug_on")
def test_unknown_api_route_is_the_envelope_with_debug_on(alpha: TenantWorld, path: str) -> None:
    response = alpha.client().get(path)
    assert response["Content-Type"] == "application/json"
    assert _assert_envelope(response, 404, "not_found")["detail"] == NO_SUCH_ENDPOINT


@pytest.mark.usefixtures("debug_on")
def test_unknown_api_route_is_404_for_every_method_without_csrf(alpha: TenantWorld) -> None:
    client = APIClient(enforce_csrf_checks=True, HTTP_HOST=alpha.host)
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)("/api/v1/nope/", {"a": 1}, format="json")
        _assert_envelope(response, 404, "not_found")


@pytest.mark.usefixtures("debug_on")
def test_unknown_api_route_on_the_public_host_is_the_envelope(db: None) -> None:
    response = APIClient(HTTP_HOST=settings.BASE_DOMAIN).get("/api/v1/nope/")
    _assert_envelope(response, 404, "not_found")


@pytest.mark.usefixtures("debug_on")
def test_a_known_api_route_without_its_slash_still_redirects(alpha: TenantWorld) -> None:
    response = alpha.client().get("/api/v1/auth/me?x=1")
    assert response.status_code == 301
    assert response["Location"] == "/api/v1/auth/me/?x=1"


def test_unknown_version_is_404(alpha: TenantWorld) -> None:
    _assert_envelope(login(alpha).get("/api/v7/toy/items/"), 404, "not_found")


def test_wrong_method_is_405(toy_alpha: ToyWorld) -> None:
    error = _assert_envelope(
        login(toy_alpha.world).put("/api/v1/toy/items/"), 405, "method_not_allowed"
    )
    assert "PUT" in str(error["detail"])


def test_unacceptable_accept_header_is_406(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).get("/api/v1/toy/items/", HTTP_ACCEPT="application/xml")
    _assert_envelope(response, 406, "not_acceptable")


def test_unsupported_media_type_is_415(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).post(
        "/api/v1/toy/items/", data="name=x", content_type="application/x-www-form-urlencoded"
    )
    _assert_envelope(response, 415, "unsupported_media_type")


def test_malformed_json_is_400_parse_error(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).post(
        "/api/v1/toy/items/", data='{"name": ', content_type="application/json"
    )
    _assert_envelope(response, 400, "parse_error")


def test_oversized_body_is_413_before_anything_reads_it(toy_alpha: ToyWorld) -> None:
    body = '{"name": "' + "x" * settings.API_MAX_BODY_BYTES + '"}'
    response = login(toy_alpha.world).post(
        "/api/v1/toy/items/", data=body, content_type="application/json"
    )
    error = _assert_envelope(response, 413, "payload_too_large")
    assert str(settings.API_MAX_BODY_BYTES) in str(error["detail"])


def test_validation_error_is_400_with_fields(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).post(
        "/api/v1/toy/items/", {"name": "", "quantity": -1}, format="json"
    )
    error = _assert_envelope(response, 400, "validation_error")
    assert error["fields"] == {
        "site": ["This field is required."],
        "name": ["This field may not be blank."],
        "quantity": ["Ensure this value is greater than or equal to 0."],
    }


def test_unauthenticated_is_401(toy_alpha: ToyWorld) -> None:
    _assert_envelope(toy_alpha.world.client().get("/api/v1/toy/items/"), 401, "not_authenticated")


def test_bad_token_is_401(toy_alpha: ToyWorld) -> None:
    client = toy_alpha.world.client()
    client.credentials(HTTP_AUTHORIZATION="Bearer not.a.token")
    _assert_envelope(client.get("/api/v1/toy/items/"), 401, "token_not_valid")


def test_missing_role_permission_is_403(toy_alpha: ToyWorld) -> None:
    from tests.apikit.conftest import STAFF_PASSWORD, make_staff

    make_staff(toy_alpha.world, role="receptionist")
    client = login(toy_alpha.world, email="staff@example.com", password=STAFF_PASSWORD)
    _assert_envelope(client.get("/api/v1/toy/items/"), 403, "permission_denied")


def test_missing_object_is_404(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    _assert_envelope(
        client.get("/api/v1/toy/items/01900000-0000-7000-8000-00000000ffff/"), 404, "not_found"
    )
    _assert_envelope(client.get("/api/v1/toy/items/42/"), 404, "not_found")


def test_version_conflict_is_409_and_precondition_is_412(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    url = f"/api/v1/toy/items/{ITEM_ID}/"
    _assert_envelope(
        client.patch(url, {"name": "x", "version": 99}, format="json"), 409, "version_conflict"
    )
    _assert_envelope(
        client.patch(url, {"name": "x"}, format="json", HTTP_IF_MATCH='W/"99"'),
        412,
        "precondition_failed",
    )


def test_reused_idempotency_key_is_422(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    first = {"site": str(toy_alpha.site.pk), "name": "spade", "quantity": 1}
    assert (
        client.post(
            "/api/v1/toy/items/", first, format="json", HTTP_IDEMPOTENCY_KEY="k1"
        ).status_code
        == 201
    )
    response = client.post(
        "/api/v1/toy/items/", {**first, "quantity": 2}, format="json", HTTP_IDEMPOTENCY_KEY="k1"
    )
    _assert_envelope(response, 422, "idempotency_key_reused")


def test_unhandled_exception_is_500_without_internals(
    toy_alpha: ToyWorld, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = login(toy_alpha.world).get("/api/v1/toy/explode/")
    error = _assert_envelope(response, 500, "server_error")
    assert "boom" not in response.content.decode()
    assert "postgres://" not in response.content.decode()
    assert "Traceback" not in response.content.decode()
    assert str(error["detail"]).startswith("Something went wrong")
    assert any("boom" in record.getMessage() or record.exc_info for record in caplog.records)


def test_database_outage_is_503_with_retry_after(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).get("/api/v1/toy/db-down/")
    _assert_envelope(response, 503, "service_unavailable")
    assert response["Retry-After"] == "1"
    assert "127.0.0.1" not in response.content.decode()


def test_database_outage_outside_drf_is_503_too() -> None:
    from django.db import OperationalError
    from django.test import RequestFactory

    from apikit.errors import json_server_error

    try:
        raise OperationalError("server closed the connection unexpectedly")
    except OperationalError:
        response = json_server_error(RequestFactory().get("/"))
    assert response.status_code == 503
    plain = json_server_error(RequestFactory().get("/"))
    assert plain.status_code == 500


def test_constraint_violation_is_409_and_model_validation_is_400(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    _assert_envelope(client.get("/api/v1/toy/integrity/"), 409, "conflict")
    error = _assert_envelope(client.get("/api/v1/toy/model-validation/"), 400, "validation_error")
    assert error["fields"] == {"ends_at": ["Must be after starts_at."]}


def test_every_response_carries_a_request_id(alpha: TenantWorld) -> None:
    supplied = alpha.client().get("/api/v1/auth/me/", HTTP_X_REQUEST_ID="abc-123-def-456")
    assert supplied["X-Request-ID"] == "abc-123-def-456"
    unknown_host = APIClient(HTTP_HOST="nobody.verdant.test").get("/api/v1/auth/me/")
    assert len(unknown_host["X-Request-ID"]) == 32
    forged = alpha.client().get("/api/v1/auth/me/", HTTP_X_REQUEST_ID="<script>")
    assert forged["X-Request-ID"] != "<script>"
