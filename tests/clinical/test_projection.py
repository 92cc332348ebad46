# mypy: disable-error-code="index,union-attr,attr-defined"
"""Issue 21, item 3: which patient fields each role sees is defined once (clinical.projection)
and applied everywhere a patient leaves the server — REST list and detail, FHIR and the NDJSON
export, search, ordering, filters, cursors, the ETag and the sync pull — for every role of
accounts.roles; the list's query count stays constant for the narrowed projection too."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from fhir.resources.R4B.patient import Patient as FhirPatient
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from apikit.policy import AccessLevel, container_access_grant, permissions_for
from clinical import projection
from clinical.api.serializers import PatientListOutput
from clinical.api.views import PatientViewSet
from clinical.models import Facility, Patient
from clinical.projection import PHONE_ROLES, RESTRICTED_PATIENT_FIELDS, patient_projection
from clinical.selectors import PATIENT_LIST_COLUMNS, PATIENT_ORDERING_FIELDS, patient_list_columns
from clinical.sync import PATIENT_FIELDS, PATIENTS
from sync.row_json import rows_json_by_ids
from tests.clinical.conftest import P1_ID, STAFF_PASSWORD, Clinic, make_patient, make_user
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL, login
from tests.query_budget import assert_constant_queries

API = "/api/v1/clinical/patients/"
PHONE = "+4915123456789"
DIGITS = PHONE[1:]
# The same number in the notations a search box gets.
PHONE_NOTATIONS = (PHONE, "+49 151 2345 6789", DIGITS, f"00{DIGITS}", "+49 (151) 2345-6789")
OTHER_PHONE = "+4915199999999"
THIRD_PHONE = "+4915100000003"  # a second patient of F1
ROLES = tuple(Role)
READERS = tuple(role for role in ROLES if "clinical.view_patient" in permissions_for(role))
# Managers of F1 (may write patients there); the other readers hold view on F1.
MANAGERS = {Role.CLINICIAN, Role.NURSE, Role.RECEPTIONIST}


def sees_phone(role: str) -> bool:
    """The expectation, read from the one definition (checked against the docs below)."""
    return role in RESTRICTED_PATIENT_FIELDS["phone"]


@dataclass(frozen=True)
class RoleWorld:
    clinic: Clinic
    clients: dict[str, APIClient]


def _email(role: str) -> str:
    if role == Role.TENANT_ADMIN:
        return ADMIN_EMAIL
    if role == Role.CLINICIAN:
        return CLINICIAN_EMAIL
    return f"{role}-projection@example.com"


@pytest.fixture
def roles(clinic: Clinic) -> RoleWorld:
    """Every role of accounts.roles signed in to alpha; P1 and a third patient (facility F1) have
    phone numbers, and every clinical role holds F1."""
    with tenant_context(clinic.world.tenant):
        Patient.objects.filter(pk=P1_ID).update(phone=PHONE)
        make_patient(facility=clinic.f1, mrn="MRN-3", given="Mary", phone=THIRD_PHONE)
        for role in ROLES:
            if role in (Role.TENANT_ADMIN, Role.CLINICIAN):
                continue
            user = make_user(email=_email(role), role=role)
            level = AccessLevel.MANAGE if role in MANAGERS else AccessLevel.VIEW
            container_access_grant(user=user, container=clinic.f1, level=level)
    clients: dict[str, APIClient] = {}
    for role in ROLES:
        password = None if role in (Role.TENANT_ADMIN, Role.CLINICIAN) else STAFF_PASSWORD
        clients[role] = login(clinic.world, email=_email(role), password=password)
    return RoleWorld(clinic=clinic, clients=clients)


def _results(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.content
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def _holds_phone(content: bytes) -> bool:
    return DIGITS.encode() in content


def _refused(response: Any, field: str) -> None:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["fields"], error


# --- the one definition ------------------------------------------------------------------------


def test_the_one_definition() -> None:
    # docs/clinical.md, "Who sees what": the roles that contact patients.
    assert dict(RESTRICTED_PATIENT_FIELDS) == {
        "phone": {Role.TENANT_ADMIN, Role.CLINICIAN, Role.NURSE, Role.RECEPTIONIST}
    }
    for role in ROLES:
        user = User(role=role)
        hidden = patient_projection(user=user).hidden
        assert hidden == (frozenset() if role in PHONE_ROLES else {"phone"}), role
        # The sync registry's projection is the same definition.
        assert PATIENTS.projection(user) == frozenset(PATIENT_FIELDS) - hidden, role
    assert PATIENTS.sensitive_fields == frozenset(RESTRICTED_PATIENT_FIELDS)
    assert patient_projection(user=object()).hidden == {"phone"}  # no role: fail closed


def test_list_columns_are_declared_once() -> None:
    assert set(PatientListOutput().fields) == set(PATIENT_LIST_COLUMNS)
    assert PatientViewSet.ordering_fields == list(PATIENT_ORDERING_FIELDS)
    for role in ROLES:
        shown = patient_projection(user=User(role=role))
        columns = patient_list_columns(projection=shown)
        for name in shown.hidden:
            assert not set(PATIENT_LIST_COLUMNS[name]) & set(columns), (role, name)
        # The cursor reads the ordering column from the row: every allowed one is fetched.
        allowed = [name for name in PATIENT_ORDERING_FIELDS if shown.shows(name)]
        assert set(allowed) <= set(columns), role


# --- REST ----------------------------------------------------------------------------------------


def test_list_and_detail_show_the_phone_exactly_to_the_defined_roles(roles: RoleWorld) -> None:
    for role, client in roles.clients.items():
        listed = client.get(API)
        detail = client.get(f"{API}{P1_ID}/")
        if role not in READERS:
            assert (listed.status_code, detail.status_code) == (403, 403), role
            continue
        row = next(row for row in _results(listed) if row["id"] == str(P1_ID))
        assert detail.status_code == 200, (role, detail.content)
        if sees_phone(role):
            assert row["phone"] == PHONE, role
            assert detail.json()["phone"] == PHONE, role
        else:
            assert "phone" not in row, role
            assert "phone" not in detail.json(), role
            assert not _holds_phone(listed.content), role
            assert not _holds_phone(detail.content), role
        assert row["mrn"] == "MRN-1"
        assert detail.json()["mrn"] == "MRN-1"


def test_writers_whose_projection_hides_a_field(roles: RoleWorld, clinicians_only: None) -> None:
    """With phones for clinicians only, the other writers' answers (a write's answer is a detail)
    leave it out, and their own ETag is the one If-Match takes."""
    url = f"{API}{P1_ID}/"
    for role in (Role.TENANT_ADMIN, *sorted(MANAGERS)):
        client = roles.clients[role]
        read = client.get(url)
        hides = role != Role.CLINICIAN
        version = read.json()["version"]
        tag = f'W/"{version};without=phone"' if hides else f'W/"{version}"'
        assert read["ETag"] == tag, role
        response = client.patch(
            url, {"given_name": f"Ada-{role}"}, format="json", HTTP_IF_MATCH=tag
        )
        assert response.status_code == 200, (role, response.content)
        assert ("phone" in response.json()) is not hides, role
        assert _holds_phone(response.content) is not hides, role
        assert response["ETag"] == tag.replace(f"{version}", f"{version + 1}", 1), role


# --- FHIR ----------------------------------------------------------------------------------------


def test_fhir_shows_telecom_exactly_to_the_defined_roles(roles: RoleWorld) -> None:
    for role, client in roles.clients.items():
        response = client.get(f"{API}{P1_ID}/fhir/")
        export = client.get("/api/v1/clinical/fhir/export/")
        if role not in READERS:
            assert (response.status_code, export.status_code) == (403, 403), role
            continue
        assert response.status_code == 200, (role, response.content)
        resource = FhirPatient.model_validate(response.json())
        if sees_phone(role):
            assert resource.telecom[0].value == PHONE, role
        else:
            assert resource.telecom is None, role
            assert not _holds_phone(response.content), role
        # The export is tenant_admin's (who sees phones); everyone else is refused.
        if role == Role.TENANT_ADMIN:
            body = b"".join(export.streaming_content)
            assert _holds_phone(body) is sees_phone(role)
        else:
            assert export.status_code == 403, role


# --- search ----------------------------------------------------------------------------------------


def test_search_finds_a_phone_only_for_the_defined_roles(roles: RoleWorld) -> None:
    for role in READERS:
        client = roles.clients[role]
        for term in PHONE_NOTATIONS:
            response = client.get(API, {"search": term})
            found = [row["id"] for row in _results(response)]
            if sees_phone(role):
                assert found[:1] == [str(P1_ID)], (role, term)
            else:
                assert found == [], (role, term)
                assert not _holds_phone(response.content), (role, term)
        # The patient is still found by what the role may see.
        assert [row["id"] for row in _results(client.get(API, {"search": "MRN-1"}))] == [
            str(P1_ID)
        ], role


def test_detail_with_a_search_is_no_phone_oracle(roles: RoleWorld) -> None:
    """``?search=`` narrows the detail lookup too: for a role that may not see the phone, the
    right number and a wrong one must answer alike."""
    for role in READERS:
        client = roles.clients[role]
        right = client.get(f"{API}{P1_ID}/", {"search": PHONE})
        wrong = client.get(f"{API}{P1_ID}/", {"search": OTHER_PHONE})
        fhir_right = client.get(f"{API}{P1_ID}/fhir/", {"search": PHONE})
        if sees_phone(role):
            assert (right.status_code, wrong.status_code, fhir_right.status_code) == (
                200,
                404,
                200,
            ), role
        else:
            assert right.status_code == wrong.status_code == fhir_right.status_code == 404, role


def test_the_full_text_column_holds_no_phone(roles: RoleWorld) -> None:
    with tenant_context(roles.clinic.world.tenant), connection.cursor() as cursor:
        cursor.execute(
            "SELECT search_vector::text FROM clinical_patient WHERE id = %s", [str(P1_ID)]
        )
        (vector,) = cursor.fetchone()
    assert "lovelace" in vector
    assert DIGITS not in vector
    assert "2345" not in vector


# --- ordering, filters, cursors ------------------------------------------------------------------


def _cursor_position(next_url: str) -> str:
    """The position (``p``) a next link's cursor carries: the last row's ordering value."""
    cursor = parse_qs(urlsplit(next_url).query)["cursor"][0]
    tokens = parse_qs(base64.b64decode(cursor).decode(), keep_blank_values=True)
    return tokens.get("p", [""])[0]


def test_ordering_and_filters_by_phone_only_for_the_defined_roles(roles: RoleWorld) -> None:
    for role in READERS:
        client = roles.clients[role]
        by_phone = client.get(API, {"ordering": "-phone", "page_size": "1"})
        combined = client.get(API, {"ordering": "mrn,phone"})
        filtered = client.get(API, {"phone": "+49 151 2345 6789"})
        detail_filtered = client.get(f"{API}{P1_ID}/", {"phone": PHONE})
        if sees_phone(role):
            assert [row["id"] for row in _results(by_phone)] == [str(P1_ID)], role
            # The reason ordering is projected: the cursor carries the ordering column's value.
            assert _cursor_position(by_phone.json()["next"]) == PHONE, role
            assert combined.status_code == 200, role
            assert [row["id"] for row in _results(filtered)] == [str(P1_ID)], role
            assert detail_filtered.status_code == 200, role
        else:
            for response in (by_phone, combined):
                _refused(response, "ordering")
                message = response.json()["error"]["fields"]["ordering"][0]
                assert "phone" not in message.split("use one of:")[1], role
            _refused(filtered, "phone")
            _refused(detail_filtered, "phone")


def test_cursors_of_hidden_roles_never_carry_a_phone(roles: RoleWorld) -> None:
    for role in READERS:
        if sees_phone(role):
            continue
        client = roles.clients[role]
        for ordering in (None, *PATIENT_ORDERING_FIELDS):
            params = {"page_size": "1", **({"ordering": ordering} if ordering else {})}
            response = client.get(API, params)
            if ordering == "phone":
                _refused(response, "ordering")
                continue
            assert response.status_code == 200, (role, ordering, response.content)
            next_url = response.json()["next"]
            assert next_url, (role, ordering)
            assert "+49151" not in _cursor_position(next_url), (role, ordering)


# --- ETags ---------------------------------------------------------------------------------------


def test_the_etag_names_the_projection(roles: RoleWorld) -> None:
    url = f"{API}{P1_ID}/"
    tags = {role: roles.clients[role].get(url)["ETag"] for role in READERS}
    for role, tag in tags.items():
        assert tag == ('W/"1"' if sees_phone(role) else 'W/"1;without=phone"'), role
    full, narrow = tags[Role.NURSE], tags[Role.VIEWER]
    assert full != narrow
    viewer, nurse = roles.clients[Role.VIEWER], roles.clients[Role.NURSE]
    # The nurse's copy holds the phone: never confirmed to a viewer, and vice versa.
    response = viewer.get(url, HTTP_IF_NONE_MATCH=full)
    assert response.status_code == 200
    assert "phone" not in response.json()
    response = nurse.get(url, HTTP_IF_NONE_MATCH=narrow)
    assert response.status_code == 200
    assert response.json()["phone"] == PHONE
    # Each one's own tag revalidates.
    response = viewer.get(url, HTTP_IF_NONE_MATCH=narrow)
    assert response.status_code == 304
    assert response["ETag"] == narrow
    assert nurse.get(url, HTTP_IF_NONE_MATCH=full).status_code == 304
    # If-Match takes the writer's own tag.
    receptionist = roles.clients[Role.RECEPTIONIST]
    response = receptionist.patch(url, {"given_name": "Ada"}, format="json", HTTP_IF_MATCH=full)
    assert response.status_code == 200, response.content
    assert response["ETag"] == 'W/"2"'


# --- one definition, every surface ---------------------------------------------------------------


def _surfaces(world: RoleWorld, role: str) -> dict[str, bool]:
    """Whether each surface gave this role P1's phone."""
    client = world.clients[role]
    listed = client.get(API)
    detail = client.get(f"{API}{P1_ID}/")
    fhir = client.get(f"{API}{P1_ID}/fhir/")
    search = client.get(API, {"search": DIGITS})
    ordering = client.get(API, {"ordering": "phone"})
    filtered = client.get(API, {"phone": PHONE})
    # The rows a pull sends (sync.row_json renders every pull page), read without waiting for
    # the change log's watermark.
    with tenant_context(world.clinic.world.tenant):
        user = User.objects.get(email=_email(role))
        pulled, _ = rows_json_by_ids(table=PATIENTS, user=user, ids=[P1_ID], wmdb=False)
    return {
        "list": _holds_phone(listed.content),
        "detail": _holds_phone(detail.content),
        "fhir": _holds_phone(fhir.content),
        "search": any(row["id"] == str(P1_ID) for row in _results(search)),
        "ordering": ordering.status_code == 200,
        "filter": filtered.status_code == 200,
        "etag": detail["ETag"] == 'W/"1"',
        "sync": _holds_phone(pulled.encode()),
    }


@pytest.fixture
def clinicians_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        projection,
        "RESTRICTED_PATIENT_FIELDS",
        MappingProxyType({"phone": frozenset({Role.CLINICIAN})}),
    )


def test_every_surface_follows_the_one_definition(roles: RoleWorld, clinicians_only: None) -> None:
    """Change the definition (phones for clinicians only) and every surface follows it."""
    for role in READERS:
        surfaces = _surfaces(roles, role)
        expected = role == Role.CLINICIAN
        assert surfaces == dict.fromkeys(surfaces, expected), role


def _push(client: APIClient, row: dict[str, Any]) -> dict[str, Any]:
    response = client.post(
        "/api/v1/sync/push/",
        data={"changes": {"patients": [row]}},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )
    assert response.status_code == 200, response.content
    result: dict[str, Any] = response.json()["results"][0]
    return result


def test_a_push_conflict_returns_the_projected_server_copy(
    roles: RoleWorld, clinicians_only: None
) -> None:
    """A stale push gets the server's copy back: only with the fields the pusher may receive."""
    with tenant_context(roles.clinic.world.tenant):
        Patient.objects.filter(pk=P1_ID).update(version=5)
    for role in (Role.TENANT_ADMIN, *sorted(MANAGERS)):
        stale = {
            "op": "upsert",
            "id": str(P1_ID),
            "base_version": 1,
            "fields": {"given_name": role},
        }
        result = _push(roles.clients[role], stale)
        assert result["status"] == "conflict", (role, result)
        assert result["server_record"]["mrn"] == "MRN-1", role
        assert ("phone" in result["server_record"]) is (role == Role.CLINICIAN), role


# --- query counts --------------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.NURSE, Role.VIEWER])
def test_list_query_count_is_constant_for_each_projection(roles: RoleWorld, role: str) -> None:
    with tenant_context(roles.clinic.world.tenant):
        facility = Facility.objects.create(name="Counted", code="Q1", timezone="Europe/Paris")
        user = User.objects.get(email=_email(role))
        container_access_grant(user=user, container=facility, level=AccessLevel.VIEW)
    client = roles.clients[role]
    counter = iter(range(10_000))
    seen: list[Any] = []

    def add_rows(n: int) -> None:
        with tenant_context(roles.clinic.world.tenant):
            for _ in range(n):
                i = next(counter)
                make_patient(
                    facility=facility,
                    mrn=f"QC-{i}",
                    phone=f"+1415555{i:04d}",
                    assigned_clinician=roles.clinic.clinician,
                )

    def fetch() -> Any:
        response = client.get(API, {"facility": str(facility.pk), "page_size": "100"})
        seen.append(response)
        return response

    assert_constant_queries(
        fetch=fetch, add_rows=add_rows, expected_rows=lambda r: len(r.json()["results"])
    )
    rows = seen[-1].json()["results"]
    assert len(rows) == 50
    assert all(("phone" in row) is sees_phone(role) for row in rows)
