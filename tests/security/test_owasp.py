"""OWASP API Security Top 10 checks on tenant A of the committed world (tests/security/world.py):

- API1 broken object level authorization, within a tenant: users without a grant on a facility
  or farm cannot read or change what is under it by id;
- API2 broken authentication: alg=none, tampered, expired and wrong-tenant JWTs;
- API3 broken object property level authorization: server-managed fields are ignored on write
  (mass assignment), and answers never expose secrets or internal columns;
- API4 unrestricted resource consumption: page size, upload size, sync push size, search and
  filter parameter sizes are capped with a 4xx, never a 5xx or an unbounded answer.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import jwt
import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django_tenants.utils import schema_context

from tests.security.conftest import SecurityWorld
from tests.security.routes import SHARED_IDS, api_routes
from tests.security.world import SHARED, USER_IDS, pdf_bytes

pytestmark = pytest.mark.security

F1, F2 = SHARED["clinical.facility"], SHARED["clinical.facility#2"]
P1, P2 = SHARED["clinical.patient"], SHARED["clinical.patient#2"]
FARM1, FARM2 = SHARED["farms.farm"], SHARED["farms.farm#2"]
FIELD2 = SHARED["farms.field#2"]


def error_code(response: Any, status: int) -> str:
    assert response.status_code == status, (response.status_code, response.content[:300])
    body = response.json()["error"]
    assert body["status"] == status
    return str(body["code"])


# --- API1: object level authorization within a tenant --------------------------------------------


@pytest.mark.parametrize("role", ["clinician", "nurse", "receptionist", "viewer"])
def test_clinical_staff_cannot_reach_patients_of_an_ungranted_facility(
    sw: SecurityWorld, role: str
) -> None:
    client = sw.client(sw.a, role)
    assert client.get(f"/api/v1/clinical/patients/{P1}/").status_code == 200
    for path in (
        f"/api/v1/clinical/patients/{P2}/",
        f"/api/v1/clinical/patients/{P2}/fhir/",
        f"/api/v1/clinical/patients/{P2}/documents/",
        f"/api/v1/clinical/facilities/{F2}/",
    ):
        # 404 exactly like a missing row (403 only where the role lacks the right entirely).
        response = client.get(path)
        assert response.status_code in {403, 404}, (path, response.content)
        assert sw.a.marker not in response.content.decode()
    listed = client.get("/api/v1/clinical/patients/", {"page_size": 200}).json()["results"]
    assert str(P2) not in {row["id"] for row in listed}
    assert str(P1) in {row["id"] for row in listed}
    filtered = client.get("/api/v1/clinical/patients/", {"facility": str(F2)})
    assert filtered.status_code in {200, 400}
    if filtered.status_code == 200:
        assert filtered.json()["results"] == []
    assert client.patch(
        f"/api/v1/clinical/patients/{P2}/", {"given_name": "x"}, format="json"
    ).status_code in {403, 404}
    created = client.post(
        "/api/v1/clinical/patients/",
        {
            "mrn": "BOLA-1",
            "given_name": "x",
            "family_name": "y",
            "birth_date": "1990-01-01",
            "facility": str(F2),
        },
        format="json",
    )
    assert created.status_code in {400, 403}, created.content


@pytest.mark.parametrize("role", ["field_agent", "agronomist", "viewer"])
def test_farm_staff_cannot_reach_an_ungranted_farm(sw: SecurityWorld, role: str) -> None:
    client = sw.client(sw.a, role)
    assert client.get(f"/api/v1/farms/{FARM1}/").status_code == 200
    for path in (
        f"/api/v1/farms/{FARM2}/",
        f"/api/v1/farms/{FARM2}/summary/",
        f"/api/v1/farms/fields/{FIELD2}/",
    ):
        assert error_code(client.get(path), 404) == "not_found", path
    fields = client.get("/api/v1/farms/fields/", {"page_size": 200}).json()["results"]
    assert str(FIELD2) not in {row["id"] for row in fields}
    observation = client.post(
        "/api/v1/farms/observations/",
        {
            "field": str(FIELD2),
            "observed_at": "2026-04-02T08:00:00Z",
            "kind": "rainfall",
            "value": 3,
            "unit": "mm",
        },
        format="json",
    )
    assert observation.status_code in {400, 403}, observation.content


def test_only_tenant_admins_manage_access_and_users(sw: SecurityWorld) -> None:
    for role in ("clinician", "nurse", "receptionist", "agronomist", "field_agent", "viewer"):
        client = sw.client(sw.a, role)
        grant = client.post(
            f"/api/v1/clinical/facilities/{F1}/access/",
            {"user": str(USER_IDS[role]), "level": "manage"},
            format="json",
        )
        assert grant.status_code in {403, 404}, (role, grant.content)
        promote = client.patch(
            f"/api/v1/users/{USER_IDS[role]}/", {"role": "tenant_admin"}, format="json"
        )
        assert promote.status_code in {403, 404}, (role, promote.content)
        assert client.get("/api/v1/audit/events/").status_code == 403


# --- API2: authentication -----------------------------------------------------------------------


def _claims(sw: SecurityWorld, role: str = "tenant_admin") -> dict[str, Any]:
    return dict(jwt.decode(sw.tokens["a"][role], options={"verify_signature": False}))


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens(sw: SecurityWorld) -> dict[str, str]:
    claims = _claims(sw)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    key = str(settings.SIMPLE_JWT["SIGNING_KEY"])
    valid = sw.tokens["a"]["tenant_admin"]
    header, payload, signature = valid.split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    escalated = {**claims, "role": "tenant_admin", "user_id": str(USER_IDS["viewer"])}
    return {
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "alg_none_upper": f"{_b64({'alg': 'NONE', 'typ': 'JWT'})}.{payload}.",
        "tampered_payload": f"{header}.{_b64(escalated)}.{signature}",
        "tampered_signature": f"{header}.{payload}.{flipped}",
        "other_key": jwt.encode(claims, "not-the-signing-key-" + "x" * 40, algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": now - 60, "iat": now - 3600}, key, "HS256"),
        "refresh_as_access": sw.refresh["a"]["tenant_admin"],
        "other_tenant": sw.tokens["b"]["tenant_admin"],
        "no_tenant_claim": jwt.encode(
            {k: v for k, v in claims.items() if k != "tid"}, key, "HS256"
        ),
        "garbage": "not-a-jwt",
    }


@pytest.mark.parametrize(
    "kind",
    [
        "alg_none",
        "alg_none_upper",
        "tampered_payload",
        "tampered_signature",
        "other_key",
        "expired",
        "refresh_as_access",
        "other_tenant",
        "no_tenant_claim",
        "garbage",
    ],
)
def test_forged_and_stale_tokens_are_refused(sw: SecurityWorld, kind: str) -> None:
    token = _bad_tokens(sw)[kind]
    client = sw.client(sw.a)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    for path in ("/api/v1/auth/me/", "/api/v1/clinical/patients/", f"/api/v1/farms/{FARM1}/"):
        response = client.get(path)
        assert response.status_code == 401, (kind, path, response.content)
        assert response.json()["error"]["status"] == 401
        assert sw.a.marker not in response.content.decode()


# --- API3: object property level authorization -------------------------------------------------


def test_server_managed_fields_are_ignored_on_create_and_update(sw: SecurityWorld) -> None:
    chosen_id = "01900000-0000-7000-8eee-000000000001"
    client = sw.client(sw.a, "tenant_admin")
    created = client.post(
        "/api/v1/clinical/patients/",
        {
            "id": chosen_id,
            "mrn": "MASS-1",
            "given_name": "Mass",
            "family_name": "Assign",
            "birth_date": "1990-01-01",
            "facility": str(F1),
            "visit_count": 99,
            "version": 42,
            "created_by": str(USER_IDS["viewer"]),
            "archived_at": "2020-01-01T00:00:00Z",
            "search_vector": "x",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"] != chosen_id
    assert body["visit_count"] == 0
    assert body["version"] == 1
    updated = client.patch(
        f"/api/v1/clinical/patients/{body['id']}/",
        {"visit_count": 7, "version": 1, "id": chosen_id, "mrn": "MASS-2"},
        format="json",
    )
    assert updated.status_code == 200, updated.content
    assert updated.json()["visit_count"] == 0
    assert updated.json()["id"] == body["id"]

    user = client.patch(
        f"/api/v1/users/{USER_IDS['viewer']}/",
        {
            "is_superuser": True,
            "is_staff": True,
            "email": "owned@example.com",
            "password": "Owned-Password-1",
            "full_name": "Renamed",
        },
        format="json",
    )
    assert user.status_code == 200, user.content
    from accounts.models import User

    with schema_context(sw.a.schema):
        viewer = User.objects.get(pk=USER_IDS["viewer"])
        assert not viewer.is_superuser
        assert not viewer.is_staff
        assert viewer.email == "viewer@example.com"
        assert not viewer.check_password("Owned-Password-1")


# Secrets and internal columns (the storage path of a document, the generated search vector).
FORBIDDEN_KEYS = {"password", "search_vector", "is_superuser", "path", "jti", "bbox_min_lon"}


def _keys(data: Any) -> set[str]:
    if isinstance(data, dict):
        return set(data) | {key for value in data.values() for key in _keys(value)}
    if isinstance(data, list):
        return {key for item in data for key in _keys(item)}
    return set()


@pytest.mark.parametrize("role", ["tenant_admin", "clinician", "field_agent"])
def test_answers_expose_no_secrets_or_internal_columns(sw: SecurityWorld, role: str) -> None:
    """Every readable collection and object route, as generated from the URL conf."""
    client = sw.client(sw.a, role)
    checked = 0
    for route in api_routes():
        if "GET" not in route.methods or route.kind not in {"collection", "object", "other"}:
            continue
        response = client.get(route.path(SHARED_IDS))
        if response.streaming:
            b"".join(response.streaming_content)  # type: ignore[attr-defined]  # (closes it)
            continue
        if response.status_code != 200 or "json" not in response.get("Content-Type", ""):
            continue
        text = response.content.decode()
        assert "pbkdf2_" not in text
        assert "md5$" not in text
        leaked = _keys(response.json()) & FORBIDDEN_KEYS
        assert not leaked, f"{route.name} exposes {leaked}"
        checked += 1
    assert checked >= 10


# --- API4: resource consumption -----------------------------------------------------------------


def test_page_size_is_capped_at_200(sw: SecurityWorld) -> None:
    from farms.models import Crop

    with schema_context(sw.a.schema):
        Crop.objects.bulk_create(Crop(name=f"bulk {n}", category="other") for n in range(230))
    client = sw.client(sw.a, "tenant_admin")
    for size in ("100000", "201", "-1", "0", "abc"):
        response = client.get("/api/v1/farms/crops/", {"page_size": size})
        assert response.status_code in {200, 400}, (size, response.content[:200])
        if response.status_code == 200:
            assert len(response.json()["results"]) <= 200, size


def test_upload_larger_than_the_cap_is_413(sw: SecurityWorld) -> None:
    from clinical.services import DOCUMENT_MAX_BYTES

    big = pdf_bytes("BIG") + b"0" * (DOCUMENT_MAX_BYTES + 1)
    response = sw.client(sw.a, "tenant_admin").post(
        f"/api/v1/clinical/patients/{P1}/documents/",
        {"file": SimpleUploadedFile("big.pdf", big, "application/pdf")},
        format="multipart",
    )
    assert error_code(response, 413)


def test_json_body_larger_than_the_cap_is_413(sw: SecurityWorld) -> None:
    body = json.dumps({"name": "x" * (settings.API_MAX_BODY_BYTES + 10)})
    response = sw.client(sw.a, "tenant_admin").post(
        "/api/v1/farms/crops/", data=body, content_type="application/json"
    )
    assert error_code(response, 413)


def test_sync_push_larger_than_the_cap_is_413(sw: SecurityWorld) -> None:
    route = next(r for r in api_routes() if r.name == "sync-push")
    view_class = getattr(route.callback, "view_class", None) or route.callback.cls
    limit = int(getattr(view_class, "max_body_bytes", settings.API_MAX_BODY_BYTES))
    body = b'{"changes": {"x": "' + b"y" * (limit + 10) + b'"}}'
    response = sw.client(sw.a, "field_agent").post(
        route.path({}), data=body, content_type="application/json"
    )
    assert error_code(response, 413)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/clinical/patients/", {"search": "a" * 5000}),
        ("/api/v1/clinical/patients/", {"search": "%_" * 2000}),
        ("/api/v1/farms/", {"search": "%" * 5000}),
        ("/api/v1/farms/fields/", {"bbox": ",".join(["1"] * 5000)}),
        ("/api/v1/clinical/patients/", {"ordering": ",".join(["mrn", "-mrn"] * 500)}),
        ("/api/v1/clinical/patients/", {"facility": ",".join([str(F1)] * 2000)}),
        ("/api/v1/clinical/appointments/", {"starts_after": "9" * 500}),
        ("/api/v1/audit/events/", {"object_id": "x" * 5000}),
        # Valid ISO 8601 that PostgreSQL cannot hold (offset beyond +15:59): found by the fuzzer.
        ("/api/v1/clinical/appointments/", {"starts_after": "0640-04-05T18:12:35+21:25"}),
        ("/api/v1/farms/observations/", {"observed_after": "0001-01-01T00:00:00+23:59"}),
        ("/api/v1/clinical/patients/", {"updated_since": "9999-12-31T23:59:59-23:59"}),
    ],
    ids=[
        "long-search",
        "wildcards",
        "farm-wildcards",
        "bbox",
        "ordering",
        "in-list",
        "date",
        "id",
        "tz-offset",
        "tz-offset-farms",
        "year-overflow",
    ],
)
def test_oversized_query_parameters_are_bounded(
    sw: SecurityWorld, path: str, params: dict[str, str]
) -> None:
    response = sw.client(sw.a, "tenant_admin").get(path, params)
    assert response.status_code in {200, 400}, (response.status_code, response.content[:300])
    if response.status_code == 200:
        assert len(response.json().get("results", [])) <= 200
    else:
        assert response.json()["error"]["status"] == 400
