"""Adversarial tenancy: for EVERY API route (read from the URL conf), every role of tenant A
attacks tenant B — by colliding id, by B-only id, with A's token on B's host, with forged Host and
X-Forwarded-Host headers — and nothing of B is ever returned or changed.

B's rows are compared before and after (a digest of every table of B's schema), and every
response body is searched for B's marker string.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from tests.security.conftest import SecurityWorld
from tests.security.routes import (
    B_ONLY_IDS,
    PARAM_MODELS,
    ROUTE_KINDS,
    SHARED_IDS,
    Route,
    api_routes,
)
from tests.security.world import B_ONLY, ROLES, schema_fingerprint

pytestmark = pytest.mark.security

ROUTES = api_routes()
ROUTES_BY_NAME = {route.name: route for route in ROUTES}


def attack_body(marker: str = "ATTACK") -> dict[str, Any]:
    """Every foreign key a write endpoint might take, pointing at B-only rows, plus plausible
    values for the common fields, so validation gets as far as resolving the references."""
    return {
        "facility": str(B_ONLY["clinical.facility"]),
        "patient": str(B_ONLY["clinical.patient"]),
        "appointment": str(B_ONLY["clinical.appointment"]),
        "clinician": str(B_ONLY["accounts.user"]),
        "assigned_clinician": str(B_ONLY["accounts.user"]),
        "user": str(B_ONLY["accounts.user"]),
        "farm": str(B_ONLY["farms.farm"]),
        "field": str(B_ONLY["farms.field"]),
        "planting": str(B_ONLY["farms.planting"]),
        "crop": str(B_ONLY["farms.crop"]),
        "supersedes": str(B_ONLY["farms.observation"]),
        "level": "manage",
        "name": marker,
        "title": marker,
        "reason": marker,
        "mrn": "MRN-ATTACK",
        "given_name": marker,
        "family_name": marker,
        "birth_date": "1990-01-01",
        "code": "ATK",
        "timezone": "UTC",
        "starts_at": "2031-03-10T09:00:00Z",
        "ends_at": "2031-03-10T09:30:00Z",
        "observed_at": "2026-04-02T08:00:00Z",
        "kind": "rainfall",
        "value": 1,
        "unit": "mm",
        "harvested_on": "2026-04-01",
        "quantity_kg": "1.0",
        "season": marker,
        "planted_on": "2026-03-01",
        "email": "attacker@example.com",
        "role": "tenant_admin",
        "items": [],
    }


def call(client: APIClient, method: str, path: str, **extra: Any) -> Any:
    if method in {"POST", "PUT", "PATCH"}:
        return getattr(client, method.lower())(
            path, data=json.dumps(attack_body()), content_type="application/json", **extra
        )
    return getattr(client, method.lower())(path, **extra)


def body_text(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def assert_no_leak(sw: SecurityWorld, response: Any, what: str) -> str:
    text = body_text(response)
    assert response.status_code < 500, f"{what}: {response.status_code} {text[:300]}"
    assert sw.b.marker not in text, f"{what}: B's data in the answer: {text[:300]}"
    return text


def seeded(route: Route) -> bool:
    return route.kind == "object" and all(route.model_for(p) in SHARED_IDS for p in route.params)


def test_every_route_is_classified() -> None:
    """New routes (sync, notify, ...) must be classified here before they ship."""
    unclassified = sorted(route.name for route in ROUTES if route.name not in ROUTE_KINDS)
    assert not unclassified, f"classify these routes in tests/security/routes.py: {unclassified}"
    unknown_params = sorted(
        {(route.name, p) for route in ROUTES for p in route.params if p not in PARAM_MODELS}
    )
    assert not unknown_params, f"map these path parameters in PARAM_MODELS: {unknown_params}"
    stale = sorted(set(ROUTE_KINDS) - set(ROUTES_BY_NAME))
    assert not stale, f"routes classified but gone from the URL conf: {stale}"
    assert {r.name for r in ROUTES if r.kind == "object"} >= {"clinical-patient-detail"}


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.name)
def test_no_route_returns_or_changes_tenant_b(sw: SecurityWorld, route: Route) -> None:
    before = schema_fingerprint(sw.b.schema)
    path_shared = route.path(SHARED_IDS)
    path_b_only = route.path(B_ONLY_IDS)
    b_host_variants = (sw.b.host, sw.b.host.upper() + ":443", sw.b.host + ".")
    # Reads first and deletes last, the admin last within each method: a legitimate delete of
    # A's own row must not hide that row from the attacks that follow.
    methods = sorted(
        route.methods, key=lambda m: ("GET", "POST", "PUT", "PATCH", "DELETE").index(m)
    )
    roles = [role for role in ROLES if role != "tenant_admin"] + ["tenant_admin"]
    for method in methods:
        for role in roles:
            label = f"{role} {method} {route.name}"
            # 1. colliding ids on A's own host: A's own row or nothing, never B's.
            own = call(sw.client(sw.a, role), method, path_shared)
            own_text = assert_no_leak(sw, own, label)
            if role == "tenant_admin" and method == "GET" and seeded(route):
                # The attack reaches real rows: the admin reads A's colliding object.
                assert own.status_code == 200, f"{label}: {own.status_code} {own_text[:200]}"
            # 2. ids that exist only in B: never a success.
            response = call(sw.client(sw.a, role), method, path_b_only)
            assert_no_leak(sw, response, f"{label} (B-only ids)")
            if route.params and route.kind == "object":
                assert response.status_code in {400, 401, 403, 404, 405, 415}, (
                    f"{label} with B-only ids answered {response.status_code}"
                )
            # 3. A's token on B's host (however the host is spelled): refused outright.
            # Every role tries B's plain host; the other spellings once, with the admin's token.
            for host in b_host_variants if role == "tenant_admin" else b_host_variants[:1]:
                response = call(sw.client(sw.a, role, host=host), method, path_shared)
                assert_no_leak(sw, response, f"{label} on {host}")
                if route.kind in {"collection", "object", "sync", "other"}:
                    assert response.status_code == 401, (
                        f"{label}: A's token on B's host {host} answered {response.status_code}"
                    )
            # 4. forged forwarding headers on A's host: still A (or refused), never B.
            forged = call(
                sw.client(sw.a, role),
                method,
                path_shared,
                HTTP_X_FORWARDED_HOST=sw.b.host,
                HTTP_FORWARDED=f"host={sw.b.host}",
                HTTP_X_ORIGINAL_HOST=sw.b.host,
            )
            assert_no_leak(sw, forged, f"{label} with X-Forwarded-Host")
    assert schema_fingerprint(sw.b.schema) == before, f"{route.name}: tenant B's rows changed"


# One at a time (strict FilterSets refuse unknown parameters): filters and searches that name
# rows only B has, or text only B's rows contain.
FILTER_ATTACKS: list[tuple[str, str]] = [
    ("search", "MRN-B3"),
    ("search", "Only"),
    ("id", str(B_ONLY["clinical.patient"])),
    ("facility", str(B_ONLY["clinical.facility"])),
    ("patient", str(B_ONLY["clinical.patient"])),
    ("clinician", str(B_ONLY["accounts.user"])),
    ("farm", str(B_ONLY["farms.farm"])),
    ("field", str(B_ONLY["farms.field"])),
    ("planting", str(B_ONLY["farms.planting"])),
    ("crop", str(B_ONLY["farms.crop"])),
    ("object_id", str(B_ONLY["clinical.patient"])),
    ("user", str(B_ONLY["accounts.user"])),
]
COLLECTIONS = [r for r in ROUTES if r.kind in {"collection", "sync"} and "GET" in r.methods]


@pytest.mark.parametrize("route", COLLECTIONS, ids=lambda r: r.name)
def test_filters_and_searches_never_reach_tenant_b(sw: SecurityWorld, route: Route) -> None:
    b_only = {str(pk) for pk in B_ONLY.values()}
    for role in ("tenant_admin", "clinician", "field_agent"):
        client = sw.client(sw.a, role)
        for name, value in FILTER_ATTACKS:
            response = client.get(route.path(SHARED_IDS), {name: value})
            text = assert_no_leak(sw, response, f"{role} {route.name}?{name}={value}")
            content_type = response.get("Content-Type", "")
            if response.status_code == 200 and content_type.startswith("application/json"):
                rows = json.loads(text)
                rows = rows.get("results", []) if isinstance(rows, dict) else rows
                found = {row.get("id") for row in rows if isinstance(row, dict)}
                assert not found & b_only, f"{route.name}?{name}: B's ids in {text[:200]}"


def test_forwarded_host_is_not_trusted_even_behind_a_proxy(sw: SecurityWorld) -> None:
    """Routing uses Host only: with a trusted proxy configured, X-Forwarded-Host still cannot
    move a request to another tenant."""
    with override_settings(TRUSTED_PROXY_COUNT=1, USE_X_FORWARDED_HOST=False):
        response = sw.client(sw.a, "tenant_admin").get(
            "/api/v1/clinical/patients/", HTTP_X_FORWARDED_HOST=sw.b.host
        )
    text = assert_no_leak(sw, response, "XFH behind proxy")
    assert response.status_code == 200
    assert sw.a.marker in text


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("sec-b.verdant.test.evil.example", 404),  # not a tenant host: refused in the envelope
        ("unknown-tenant.verdant.test", 404),
        ("verdant.test", 404),  # the public host has no API
    ],
)
def test_forged_hosts_never_reach_a_tenant(sw: SecurityWorld, host: str, status: int) -> None:
    response = sw.client(sw.a, "tenant_admin", host=host).get("/api/v1/clinical/patients/")
    text = assert_no_leak(sw, response, host)
    assert sw.a.marker not in text
    assert response.status_code == status, text
    assert response.json()["error"]["status"] == status


def test_credentials_and_refresh_tokens_of_a_do_not_work_on_b(sw: SecurityWorld) -> None:
    """Emails collide across tenants, passwords do not: A's credentials on B's host are just
    wrong credentials; A's refresh token on B's host is invalid; logout with it changes nothing."""
    before = schema_fingerprint(sw.b.schema)
    anonymous_b = sw.client(sw.b)
    login = anonymous_b.post("/api/v1/auth/token/", sw.a.credentials("tenant_admin"), format="json")
    assert login.status_code == 401
    assert login.json()["error"]["code"] == "invalid_credentials"
    refresh = sw.refresh["a"]["tenant_admin"]
    rotated = anonymous_b.post("/api/v1/auth/token/refresh/", {"refresh": refresh}, format="json")
    assert rotated.status_code == 401, rotated.content
    assert_no_leak(sw, rotated, "refresh")
    logout = anonymous_b.post("/api/v1/auth/logout/", {"refresh": refresh}, format="json")
    assert logout.status_code in {204, 401}, logout.content
    after = schema_fingerprint(sw.b.schema)
    # The failed login is audited in B (it was B's host): that table alone may grow.
    changed = {table for table in before if before[table] != after.get(table)}
    assert changed <= {"audit_auditevent"}, changed


def test_b_cursor_on_a_pages_through_a_only(sw: SecurityWorld) -> None:
    b_page = sw.client(sw.b, "tenant_admin").get("/api/v1/clinical/patients/", {"page_size": 1})
    assert b_page.status_code == 200
    next_url = b_page.json()["next"]
    assert next_url, b_page.json()
    cursor = next_url.split("cursor=")[1].split("&")[0]
    for role in ROLES:
        response = sw.client(sw.a, role).get(
            "/api/v1/clinical/patients/", {"page_size": 1, "cursor": cursor}
        )
        assert_no_leak(sw, response, f"{role} with B's cursor")
        assert response.status_code in {200, 400, 403}, response.content


def test_b_idempotency_key_does_not_replay_into_a(sw: SecurityWorld) -> None:
    key = "shared-idempotency-key-0001"
    body = {"name": "Replay Farm", "region": "x", "timezone": "UTC"}
    first_b = sw.client(sw.b, "tenant_admin").post(
        "/api/v1/farms/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert first_b.status_code == 201, first_b.content
    in_a = sw.client(sw.a, "tenant_admin").post(
        "/api/v1/farms/", body, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert in_a.status_code == 201, in_a.content
    assert "Idempotent-Replayed" not in in_a.headers
    assert in_a.json()["id"] != first_b.json()["id"]
    # And a different body under B's key is A's own first use, not a reuse error.
    other = sw.client(sw.a, "agronomist").post(
        "/api/v1/farms/", {**body, "name": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY=key
    )
    assert other.status_code in {201, 403, 422}, other.content
    assert_no_leak(sw, other, "idempotency")


def test_document_download_serves_a_file_of_a_never_b(sw: SecurityWorld) -> None:
    """The colliding document id downloads A's bytes; B's stored path is unreachable from A,
    even when an upload's file name tries to walk into B's prefix."""
    from tests.security.world import SHARED

    patient, document = SHARED["clinical.patient"], SHARED["clinical.patientdocument"]
    url = f"/api/v1/clinical/patients/{patient}/documents/{document}/download/"
    response = sw.client(sw.a, "tenant_admin").get(url)
    content = body_text(response)
    assert response.status_code == 200
    assert sw.a.marker in content
    assert sw.b.marker not in content
    assert sw.b.document_path.startswith(f"{sw.b.schema}/")

    from django.core.files.uploadedfile import SimpleUploadedFile

    from tests.security.world import pdf_bytes

    evil_name = f"../../{sw.b.document_path}"
    upload = sw.client(sw.a, "tenant_admin").post(
        f"/api/v1/clinical/patients/{patient}/documents/",
        {"file": SimpleUploadedFile(evil_name, pdf_bytes("ATTACK"), "application/pdf")},
        format="multipart",
    )
    assert upload.status_code == 201, upload.content
    assert ".." not in upload.json().get("original_name", "")
    from clinical.models import PatientDocument

    with_tenant_a(sw, lambda: _assert_stored_under_a(sw, PatientDocument, upload.json()["id"]))


def _assert_stored_under_a(sw: SecurityWorld, model: Any, pk: str) -> None:
    stored = model.objects.get(pk=pk)
    assert stored.path.startswith(f"{sw.a.schema}/"), stored.path


def with_tenant_a(sw: SecurityWorld, work: Any) -> None:
    from django_tenants.utils import schema_context

    with schema_context(sw.a.schema):
        work()


@pytest.mark.parametrize("spelling", ["upper", "trailing-dot", "upper-port"])
def test_host_names_route_case_insensitively(sw: SecurityWorld, spelling: str) -> None:
    """Regression: an upper-case or fully qualified (trailing dot) host used to route nowhere."""
    host = {
        "upper": sw.b.host.upper(),
        "trailing-dot": sw.b.host + ".",
        "upper-port": sw.b.host.upper() + ":443",
    }[spelling]
    own = sw.client(sw.b, "tenant_admin", host=host).get("/api/v1/auth/me/")
    assert own.status_code == 200, own.content
    foreign = sw.client(sw.a, "tenant_admin", host=host).get("/api/v1/auth/me/")
    assert foreign.status_code == 401, foreign.content
