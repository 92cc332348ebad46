"""Issue 21, item 3: the patient's phone number reaches exactly the roles of the one definition
(clinical.projection) on every patient surface, attacked as each role of tenant A would, in the
committed two-tenant world whose patients collide on purpose: the same ids, MRNs and phone
number in A and B (tests/security/world.py).

A viewer once received the phone in REST lists, details, FHIR and ``?search=<phone>`` though the
sync pull withheld it; none of those, nor ordering, filtering, cursors or the ETag, may give it
now, and nothing finds B's patients from A by phone or anything else.
"""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.roles import Role
from apikit.policy import permissions_for
from clinical.projection import RESTRICTED_PATIENT_FIELDS
from tests.security.conftest import SecurityWorld
from tests.security.world import B_ONLY, MARKERS, ROLES, SHARED

pytestmark = pytest.mark.security

API = "/api/v1/clinical/patients/"
# Every seeded patient's number, in A and in B.
PHONE = "+4915112345678"
DIGITS = PHONE[1:]
NOTATIONS = (PHONE, "+49 151 1234 5678", DIGITS, f"00{DIGITS}")
PATIENT = SHARED["clinical.patient"]  # facility F1 in both tenants; every clinical role holds F1
B_PATIENT = B_ONLY["clinical.patient"]


def _body(response: Any) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return bytes(response.content)


def _reads_patients(role: str) -> bool:
    return "clinical.view_patient" in permissions_for(role)


def _sees_phone(role: str) -> bool:
    return _reads_patients(role) and role in RESTRICTED_PATIENT_FIELDS["phone"]


def _surfaces(client: APIClient) -> dict[str, Any]:
    return {
        "list": client.get(API),
        "detail": client.get(f"{API}{PATIENT}/"),
        "fhir": client.get(f"{API}{PATIENT}/fhir/"),
        "search": client.get(API, {"search": PHONE}),
        "search-digits": client.get(API, {"search": DIGITS}),
        "ordering": client.get(API, {"ordering": "-phone"}),
        "filter": client.get(API, {"phone": PHONE}),
        "export": client.get("/api/v1/clinical/fhir/export/"),
    }


def test_every_role_gets_the_phone_exactly_as_defined(sw: SecurityWorld) -> None:
    for role in ROLES:
        for name, response in _surfaces(sw.client(sw.a, role)).items():
            body = _body(response)
            expected = _sees_phone(role) and (name != "export" or role == Role.TENANT_ADMIN)
            assert (DIGITS.encode() in body) is expected, (role, name, response.status_code)
            assert MARKERS["b"].encode() not in body, (role, name)
            if not _reads_patients(role):
                assert response.status_code == 403, (role, name)
            elif name in {"ordering", "filter"} and not _sees_phone(role):
                assert response.status_code == 400, (role, name)
                assert response.json()["error"]["code"] == "validation_error"


def test_the_etag_differs_by_projection(sw: SecurityWorld) -> None:
    url = f"{API}{PATIENT}/"
    tags = {role: sw.client(sw.a, role).get(url)["ETag"] for role in ROLES if _reads_patients(role)}
    assert {tags[role] for role in tags if _sees_phone(role)} == {'W/"1"'}
    assert {tags[role] for role in tags if not _sees_phone(role)} == {'W/"1;without=phone"'}
    viewer = sw.client(sw.a, Role.VIEWER)
    for role in tags:
        response = viewer.get(url, HTTP_IF_NONE_MATCH=tags[role])
        if _sees_phone(role):
            # Another role's tag for the same version is no 304: the viewer gets its own copy.
            assert response.status_code == 200, role
            assert DIGITS.encode() not in response.content
        else:
            assert response.status_code == 304, role


def test_a_viewer_of_a_finds_no_patient_by_phone_in_either_tenant(sw: SecurityWorld) -> None:
    viewer = sw.client(sw.a, Role.VIEWER)
    for term in NOTATIONS:
        response = viewer.get(API, {"search": term})
        assert response.status_code == 200, (term, response.content)
        assert response.json()["results"] == [], term
        # The detail's lookup is searched too: the number cannot be confirmed one patient at a time.
        assert viewer.get(f"{API}{PATIENT}/", {"search": term}).status_code == 404, term
        assert viewer.get(f"{API}{PATIENT}/fhir/", {"search": term}).status_code == 404, term
    # A's own patient is found by what a viewer may see, without the number.
    found = viewer.get(API, {"search": MARKERS["a"]})
    assert [row["id"] for row in found.json()["results"]] == [str(PATIENT)]
    assert DIGITS.encode() not in found.content


def test_nothing_of_b_is_found_from_a(sw: SecurityWorld) -> None:
    """B's patients share A's ids, MRNs and number; B alone has MRN-B3 ("Only"). No role of A
    finds any of B's by phone, MRN, name, marker or id, on A's host or with A's token on B's."""
    terms = (*NOTATIONS, MARKERS["b"], "MRN-B3", "Only", "MRN-1", "Lovelace", str(B_PATIENT))
    for role in ROLES:
        if not _reads_patients(role):
            continue
        client = sw.client(sw.a, role)
        for term in terms:
            response = client.get(API, {"search": term})
            assert response.status_code == 200, (role, term)
            assert MARKERS["b"].encode() not in response.content, (role, term)
            found = {row["id"] for row in response.json()["results"]}
            assert found <= {str(PATIENT), str(SHARED["clinical.patient#2"])}, (role, term)
            if term in NOTATIONS and not _sees_phone(role):
                assert found == set(), (role, term)
        for path in (f"{API}{B_PATIENT}/", f"{API}{B_PATIENT}/fhir/"):
            assert client.get(path).status_code == 404, (role, path)
        if _sees_phone(role):
            response = client.get(API, {"phone": PHONE})
            assert MARKERS["b"].encode() not in response.content, role
            assert MARKERS["a"].encode() in response.content, role
        foreign = sw.client(sw.a, role, host=sw.b.host)
        for params in ({"search": PHONE}, {"search": MARKERS["b"]}, {"phone": PHONE}):
            response = foreign.get(API, params)
            assert response.status_code == 401, (role, params)
            assert MARKERS["b"].encode() not in response.content
