"""Issue 21, item 9: no cache may keep personal data. Every response to an authenticated request
(API by token, admin by session) carries ``Cache-Control: private, no-store`` and ``Vary:
Authorization, Cookie`` — lists, details, FHIR, downloads, exports, writes, errors and 304s —
and ``If-None-Match`` revalidation keeps working (the ETag is still sent and honoured)."""

from __future__ import annotations

from typing import Any

import pytest
from django.utils.cache import has_vary_header

from tests.security.admin_session import admin_session
from tests.security.conftest import SecurityWorld
from tests.security.routes import SHARED_IDS, api_routes
from tests.security.world import SHARED

pytestmark = pytest.mark.security

P1 = SHARED["clinical.patient"]
F1 = SHARED["clinical.facility"]
CROP = SHARED["farms.crop"]


def assert_private(response: Any, label: str) -> None:
    if response.streaming:
        b"".join(response.streaming_content)  # (closes it)
    assert response.get("Cache-Control") == "private, no-store", (
        label,
        response.status_code,
        response.get("Cache-Control"),
    )
    for header in ("Authorization", "Cookie"):
        assert has_vary_header(response, header), (label, response.get("Vary"))


@pytest.mark.parametrize("role", ["tenant_admin", "clinician", "viewer", "field_agent"])
def test_every_authenticated_api_read_is_private(sw: SecurityWorld, role: str) -> None:
    """Every readable route of the URL conf, whatever it answers this role (200, 403, 404)."""
    client = sw.client(sw.a, role)
    statuses: set[int] = set()
    for route in api_routes():
        if "GET" not in route.methods or route.kind not in {"collection", "object", "other"}:
            continue
        response = client.get(route.path(SHARED_IDS))
        statuses.add(response.status_code)
        assert_private(response, f"{role} GET {route.name}")
    assert 200 in statuses


def test_writes_and_errors_of_a_signed_in_user_are_private(sw: SecurityWorld) -> None:
    admin = sw.client(sw.a, "tenant_admin")
    created = admin.post(
        "/api/v1/farms/crops/", {"name": "Teff", "category": "cereal"}, format="json"
    )
    assert created.status_code == 201, created.content
    assert_private(created, "create")
    crop = created.json()["id"]
    changed = admin.patch(f"/api/v1/farms/crops/{crop}/", {"variety": "red"}, format="json")
    assert changed.status_code == 200, changed.content
    assert_private(changed, "update")
    assert_private(admin.delete(f"/api/v1/farms/crops/{crop}/"), "delete")
    assert_private(admin.post("/api/v1/farms/crops/", {}, format="json"), "400")
    assert_private(admin.get("/api/v1/clinical/patients/?ordering=nope"), "400 ordering")
    assert_private(admin.get("/api/v1/no-such-route/"), "404 route")
    # Credentials no view accepted: the answer still depends on them.
    refused = sw.client(sw.a)
    refused.credentials(HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert_private(refused.get("/api/v1/clinical/patients/"), "401")
    viewer = sw.client(sw.a, "viewer")
    assert_private(viewer.get("/api/v1/audit/events/"), "403")
    assert_private(viewer.get(f"/api/v1/clinical/patients/{SHARED['clinical.patient#2']}/"), "404")


def test_revalidation_keeps_working_with_no_store(sw: SecurityWorld) -> None:
    client = sw.client(sw.a, "clinician")
    path = f"/api/v1/clinical/patients/{P1}/"
    first = client.get(path)
    assert first.status_code == 200
    assert_private(first, "detail")
    etag = first["ETag"]
    assert etag.startswith('W/"')

    not_modified = client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304
    assert not_modified["ETag"] == etag
    assert not not_modified.content
    assert_private(not_modified, "304")

    stale = client.get(path, HTTP_IF_NONE_MATCH='W/"999999"')
    assert stale.status_code == 200
    assert_private(stale, "stale tag")
    # A 304 never stands in for another user's answer: the cache key includes the credentials.
    other = sw.client(sw.a, "nurse").get(path, HTTP_IF_NONE_MATCH=etag)
    assert other.status_code in {200, 304}
    assert_private(other, "other user")


def test_downloads_and_exports_keep_one_consistent_header(sw: SecurityWorld) -> None:
    admin = sw.client(sw.a, "tenant_admin")
    document = SHARED["clinical.patientdocument"]
    for path in (
        f"/api/v1/clinical/patients/{P1}/documents/{document}/download/",
        "/api/v1/clinical/fhir/export/",
        "/api/v1/farms/observations/export/",
    ):
        response = admin.get(path)
        assert response.status_code == 200, path
        assert_private(response, path)


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/clinical/patient/",
        f"/admin/clinical/patient/{P1}/change/",
        f"/admin/clinical/facility/{F1}/change/",
        "/admin/accounts/user/",
        "/admin/accounts/user/add/",
        "/admin/password_change/",
        "/admin/no-such-page/",
    ],
)
def test_admin_pages_of_a_signed_in_user_are_private(sw: SecurityWorld, path: str) -> None:
    response = admin_session(sw.a).get(path)
    assert response.status_code in {200, 302, 404}, (path, response.status_code)
    assert_private(response, path)


def test_anonymous_answers_are_left_to_their_views(sw: SecurityWorld) -> None:
    """Nothing personal in them: the middleware leaves their caching alone (the schema may be
    cached by the browser)."""
    anonymous = sw.client(sw.a)
    schema = anonymous.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert "no-store" not in schema.get("Cache-Control", "")
