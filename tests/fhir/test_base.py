# mypy: disable-error-code="no-untyped-def"
"""The FHIR R4 base /fhir/R4/ (issue 17, item 1): CapabilityStatement, read, search, paging,
media types, ETags, OperationOutcome errors, and the REST API's scoping, role projection and
read audit — on two tenants holding colliding ids."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from django_tenants.utils import tenant_context

from accounts.roles import Role
from audit.models import AuditEvent
from clinical.models import Appointment, Facility, Patient
from tests.clinical.conftest import (
    A1_ID,
    A2_ID,
    BASE_TIME,
    F1_ID,
    F2_ID,
    NURSE_EMAIL,
    P1_ID,
    P2_ID,
    VIEWER_EMAIL,
    Clinic,
    make_appointment,
    make_patient,
    make_user,
)
from tests.conftest import CLINICIAN_EMAIL, CLINICIAN_ID
from tests.fhir.world import (
    AGRONOMIST_EMAIL,
    BASE,
    CANCELLED_ID,
    FHIR_JSON,
    LANDLINE,
    MOBILE,
    NAMELESS_ID,
    RECEPTIONIST_EMAIL,
    RESOURCE_TYPES,
    SHORT_ID,
    FhirClinic,
    fhir_clinic,
    references,
)
from tests.query_budget import assert_constant_queries


def ids(bundle: dict[str, Any]) -> set[str]:
    return {entry["resource"]["id"] for entry in bundle.get("entry", [])}


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((li["url"] for li in bundle["link"] if li["relation"] == relation), None)


def outcome_code(response: Any) -> str:
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert response["Content-Type"] == FHIR_JSON
    return str(body["issue"][0]["code"])


# --- CapabilityStatement -----------------------------------------------------------------------


def test_metadata_needs_no_token_and_describes_the_base(fc: FhirClinic) -> None:
    anonymous = fc.world.client()
    for client in (anonymous, fc.client()):
        response = client.get(f"{BASE}/metadata")
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == FHIR_JSON
    # A token that is not one is not even looked at.
    anonymous.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    statement = anonymous.get(f"{BASE}/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["kind"] == "instance"
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["format"] == ["json"]
    assert statement["implementation"]["url"] == f"http://{fc.world.host}/fhir/R4"
    assert statement["instantiates"] == [
        "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
    ]
    rest = statement["rest"][0]
    assert [op["name"] for op in rest["operation"]] == ["export"]
    # No SMART OAuth URIs: fhirclient would switch to an OAuth flow.
    assert "service" not in rest["security"]
    assert "extension" not in rest["security"]
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == set(RESOURCE_TYPES)
    for resource in resources.values():
        assert {i["code"] for i in resource["interaction"]} == {"read", "search-type"}
        assert resource["conditionalRead"] == "not-match"
        assert all(
            p["type"] in {"token", "string", "date", "reference"} for p in resource["searchParam"]
        )
    patient_params = {p["name"]: p["type"] for p in resources["Patient"]["searchParam"]}
    assert patient_params == {
        "_id": "token",
        "identifier": "token",
        "name": "string",
        "family": "string",
        "given": "string",
        "birthdate": "date",
        "gender": "token",
        "general-practitioner": "reference",
        "organization": "reference",
        "_lastUpdated": "date",
        "phone": "token",
    }
    appointment_params = {p["name"] for p in resources["Appointment"]["searchParam"]}
    assert appointment_params >= {"_id", "date", "patient", "practitioner", "actor", "location"}
    assert {"_id", "name", "identifier"} <= {
        p["name"] for p in resources["Practitioner"]["searchParam"]
    }
    assert {"_id", "name", "identifier"} <= {
        p["name"] for p in resources["Location"]["searchParam"]
    }


def test_metadata_is_the_tenants_own(fc: FhirClinic, beta: Any) -> None:
    beta_statement = beta.client().get(f"{BASE}/metadata").json()
    assert beta_statement["implementation"]["url"] == f"http://{beta.host}/fhir/R4"
    assert (
        beta_statement["publisher"] != fc.world.client().get(f"{BASE}/metadata").json()["publisher"]
    )


# --- read, ETag, media types -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("resource_type", "resource_id"),
    [
        ("Patient", P1_ID),
        ("Appointment", A1_ID),
        ("Practitioner", CLINICIAN_ID),
        ("Location", F1_ID),
        ("Organization", "alpha"),
    ],
)
def test_read_every_type_with_etag_and_304(
    fc: FhirClinic, resource_type: str, resource_id: Any
) -> None:
    client = fc.client()
    response = client.get(f"{BASE}/{resource_type}/{resource_id}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == FHIR_JSON
    resource = response.json()
    assert resource["resourceType"] == resource_type
    assert resource["id"] == str(resource_id)
    version = resource["meta"]["versionId"]
    assert response["ETag"] == f'W/"{version}"'
    assert response["Last-Modified"].endswith("GMT")
    assert resource["meta"]["lastUpdated"].endswith("Z")

    not_modified = client.get(
        f"{BASE}/{resource_type}/{resource_id}", HTTP_IF_NONE_MATCH=response["ETag"]
    )
    assert not_modified.status_code == 304
    assert not_modified["ETag"] == response["ETag"]
    assert not_modified.content == b""
    stale = client.get(f"{BASE}/{resource_type}/{resource_id}", HTTP_IF_NONE_MATCH='W/"999"')
    assert stale.status_code == 200


def test_a_change_moves_the_version_and_the_etag(fc: FhirClinic) -> None:
    client = fc.client()
    first = client.get(f"{BASE}/Patient/{P1_ID}")
    patch = client.patch(
        f"/api/v1/clinical/patients/{P1_ID}/",
        {"given_name": "Augusta"},
        format="json",
        HTTP_ACCEPT="application/json",
    )
    assert patch.status_code == 200, patch.content
    second = client.get(f"{BASE}/Patient/{P1_ID}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert second.status_code == 200
    assert second.json()["meta"]["versionId"] == "2"
    assert second["ETag"] == 'W/"2"'
    assert second.json()["name"][0]["given"] == ["Augusta"]


@pytest.mark.parametrize(
    "accept",
    [
        "application/fhir+json",
        "application/fhir+json; fhirVersion=4.0",
        "application/json",
        "*/*",
        "application/*",
        "text/html, application/fhir+json;q=0.9",
        "",
    ],
)
def test_accepted_media_types(fc: FhirClinic, accept: str) -> None:
    response = fc.client().get(f"{BASE}/Patient/{P1_ID}", HTTP_ACCEPT=accept)
    assert response.status_code == 200, (accept, response.content)
    assert response["Content-Type"] == FHIR_JSON


@pytest.mark.parametrize("value", ["json", "application/fhir+json", "application/json"])
def test_format_parameter_wins_over_accept(fc: FhirClinic, value: str) -> None:
    response = fc.client().get(
        f"{BASE}/Patient", {"_format": value}, HTTP_ACCEPT="application/fhir+xml"
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == FHIR_JSON
    # _format is a result parameter: not a search parameter, not in the self link.
    assert "_format" not in (link(response.json(), "self") or "")


@pytest.mark.parametrize(
    ("accept", "query"),
    [
        ("application/fhir+xml", {}),
        ("application/xml", {}),
        ("application/fhir+json; fhirVersion=3.0", {}),
        ("application/fhir+json; fhirVersion=5.0", {}),
        ("application/fhir+json", {"_format": "xml"}),
        ("application/fhir+json", {"_format": "application/fhir+json; fhirVersion=1.0"}),
    ],
)
def test_unservable_media_types_are_406_outcomes(
    fc: FhirClinic, accept: str, query: dict[str, str]
) -> None:
    response = fc.client().get(f"{BASE}/Patient", query, HTTP_ACCEPT=accept)
    assert response.status_code == 406
    assert outcome_code(response) == "not-supported"


# --- errors ------------------------------------------------------------------------------------


def test_errors_are_operation_outcomes(fc: FhirClinic) -> None:
    anonymous = fc.world.client()
    unauthenticated = anonymous.get(f"{BASE}/Patient")
    assert unauthenticated.status_code == 401
    assert outcome_code(unauthenticated) == "login"
    assert unauthenticated["WWW-Authenticate"].startswith("Bearer")

    # An agronomist of a mixed tenant has no clinical rights at all.
    forbidden = fc.client(AGRONOMIST_EMAIL).get(f"{BASE}/Patient")
    assert forbidden.status_code == 403
    assert outcome_code(forbidden) == "forbidden"

    client = fc.client()
    for path in (
        f"{BASE}/Patient/{uuid.uuid4()}",
        f"{BASE}/Patient/not-a-uuid",
        f"{BASE}/Organization/beta",
        f"{BASE}/Nonsense",
        f"{BASE}/Patient/{P1_ID}/_history/1",
    ):
        missing = client.get(path)
        assert missing.status_code == 404, path
        assert outcome_code(missing) == "not-found"

    for method in ("post", "put", "patch", "delete"):
        refused = getattr(client, method)(f"{BASE}/Patient/{P1_ID}", {}, format="json")
        assert refused.status_code == 405, method
        assert outcome_code(refused) == "not-supported"

    bad_date = client.get(f"{BASE}/Patient", {"birthdate": "yesterday"})
    assert bad_date.status_code == 400
    assert outcome_code(bad_date) == "invalid"
    assert bad_date.json()["issue"][0]["diagnostics"].startswith("birthdate: 'yesterday'")
    for query in ({"_count": "0"}, {"_count": "many"}, {"_cursor": "x"}, {"name:sounds": "a"}):
        assert client.get(f"{BASE}/Patient", query).status_code == 400, query
    # A cursor past the one Organization: an empty page, never an error.
    past = client.get(f"{BASE}/Organization", {"_cursor": str(uuid.uuid4())})
    assert past.status_code == 200
    assert "entry" not in past.json()
    for prefix in ("sa", "eb", "ap"):
        assert client.get(f"{BASE}/Appointment", {"date": f"{prefix}2031"}).status_code == 400


def test_throttled_is_a_429_outcome_with_retry_after(fc: FhirClinic) -> None:
    from tests.apikit.test_throttling import give_plan

    client = fc.client()
    give_plan(fc.world, requests_per_minute=10_000, user_burst_per_minute=2)
    statuses = [client.get(f"{BASE}/Patient").status_code for _ in range(3)]
    assert statuses[:2] == [200, 200]
    throttled = client.get(f"{BASE}/Patient")
    assert throttled.status_code == 429
    assert outcome_code(throttled) == "throttled"
    assert int(throttled["Retry-After"]) >= 1


# --- scoping, projection, audit: the REST API's ------------------------------------------------


def test_scope_is_the_rest_apis(fc: FhirClinic) -> None:
    # The clinician manages F1 only: P1 and F1's appointments, nothing of F2.
    client = fc.client(CLINICIAN_EMAIL)
    rest = {
        row["id"]
        for row in client.get("/api/v1/clinical/patients/", HTTP_ACCEPT="application/json").json()[
            "results"
        ]
    }
    fhir = ids(client.get(f"{BASE}/Patient").json())
    assert fhir == rest == {str(P1_ID)}
    assert client.get(f"{BASE}/Patient/{P2_ID}").status_code == 404
    assert client.get(f"{BASE}/Appointment/{A2_ID}").status_code == 404
    assert client.get(f"{BASE}/Location/{F2_ID}").status_code == 404
    rest_appointments = {
        row["id"]
        for row in client.get(
            "/api/v1/clinical/appointments/", HTTP_ACCEPT="application/json"
        ).json()["results"]
    }
    assert ids(client.get(f"{BASE}/Appointment").json()) == rest_appointments
    assert ids(client.get(f"{BASE}/Location").json()) == {str(F1_ID)}


def test_reads_are_audited_like_the_rest_api(fc: FhirClinic) -> None:
    client = fc.client(NURSE_EMAIL)
    with tenant_context(fc.world.tenant):
        before = set(AuditEvent.objects.values_list("pk", flat=True))
    assert client.get(f"{BASE}/Patient/{P1_ID}").status_code == 200
    assert client.get(f"{BASE}/Patient", {"family": "Lovelace"}).status_code == 200
    assert client.get(f"{BASE}/Appointment/{A1_ID}").status_code == 200
    assert (
        client.get(
            f"/api/v1/clinical/patients/{P1_ID}/", HTTP_ACCEPT="application/json"
        ).status_code
        == 200
    )
    with tenant_context(fc.world.tenant):
        events = list(
            AuditEvent.objects.filter(action=AuditEvent.Action.READ)
            .exclude(pk__in=before)
            .order_by("occurred_at")
        )
    trail = [(e.object_type, [str(i) for i in e.object_ids], e.actor_email) for e in events]
    assert trail == [
        ("clinical.patient", [str(P1_ID)], NURSE_EMAIL),
        ("clinical.patient", [str(P1_ID)], NURSE_EMAIL),
        ("clinical.appointment", [str(A1_ID)], NURSE_EMAIL),
        ("clinical.patient", [str(P1_ID)], NURSE_EMAIL),
    ]


def test_viewer_gets_no_phone_and_cannot_search_by_one(fc: FhirClinic) -> None:
    viewer = fc.client(VIEWER_EMAIL)
    read = viewer.get(f"{BASE}/Patient/{P1_ID}")
    assert read.status_code == 200
    assert "telecom" not in read.json()
    # The ETag names what this representation leaves out, like the REST API's.
    assert read["ETag"] == 'W/"1;without=phone"'
    assert viewer.get(f"{BASE}/Patient/{P1_ID}", HTTP_IF_NONE_MATCH='W/"1"').status_code == 200
    search = viewer.get(f"{BASE}/Patient").json()
    assert all("telecom" not in e["resource"] for e in search["entry"])
    # phone does not exist for a viewer: ignored (and not in self), or a 400 when strict.
    ignored = viewer.get(f"{BASE}/Patient", {"phone": MOBILE}).json()
    assert ids(ignored) == {str(P1_ID), str(P2_ID)}
    assert "phone" not in (link(ignored, "self") or "")
    strict = viewer.get(f"{BASE}/Patient", {"phone": MOBILE}, HTTP_PREFER="handling=strict")
    assert strict.status_code == 400
    assert "phone" in strict.json()["issue"][0]["diagnostics"]
    statement = viewer.get(f"{BASE}/metadata").json()
    assert "phone" in {p["name"] for p in statement["rest"][0]["resource"][0]["searchParam"]}

    for email in (None, NURSE_EMAIL, RECEPTIONIST_EMAIL):
        staff = fc.client(email)
        assert ids(staff.get(f"{BASE}/Patient", {"phone": MOBILE}).json()) == {str(P1_ID)}
        assert ids(staff.get(f"{BASE}/Patient", {"phone": "+49 30 1234-5678"}).json()) == {
            str(P2_ID)
        }
        assert staff.get(f"{BASE}/Patient/{P1_ID}").json()["telecom"] == [
            {"system": "phone", "value": MOBILE, "use": "mobile"}
        ]


@pytest.mark.parametrize(
    "email", [None, CLINICIAN_EMAIL, NURSE_EMAIL, RECEPTIONIST_EMAIL, VIEWER_EMAIL]
)
def test_every_reference_resolves_for_whoever_reads_the_resource(
    fc: FhirClinic, email: str | None
) -> None:
    client = fc.client(email)
    resources = [
        entry["resource"]
        for resource_type in RESOURCE_TYPES
        for entry in client.get(f"{BASE}/{resource_type}").json().get("entry", [])
    ]
    assert resources
    targets = {ref for resource in resources for ref in references(resource)}
    assert any(t.startswith("Organization/") for t in targets)
    assert any(t.startswith("Practitioner/") for t in targets)
    assert any(t.startswith("Location/") for t in targets)
    for target in sorted(targets):
        response = client.get(f"{BASE}/{target}")
        assert response.status_code == 200, (email, target, response.content)


# --- search ------------------------------------------------------------------------------------


def test_patient_search_parameters(fc: FhirClinic) -> None:
    client = fc.client()
    mrn_system = client.get(f"{BASE}/Patient/{P1_ID}").json()["identifier"][0]["system"]

    def found(**query: str) -> set[str]:
        response = client.get(f"{BASE}/Patient", query)
        assert response.status_code == 200, (query, response.content)
        return ids(response.json())

    p1, p2 = str(P1_ID), str(P2_ID)
    assert found() == {p1, p2}
    assert found(_id=f"{p1},{uuid.uuid4()}") == {p1}
    assert found(identifier="MRN-2") == {p2}
    assert found(identifier=f"{mrn_system}|MRN-1") == {p1}
    assert found(identifier="urn:other|MRN-1") == set()
    assert found(name="gra") == {p2}
    assert found(name="LOVE") == {p1}
    assert found(family="Hop") == {p2}
    assert found(given="Ada") == {p1}
    assert found(**{"family:exact": "Hop"}) == set()
    assert found(**{"family:exact": "Hopper"}) == {p2}
    assert found(**{"name:contains": "ovel"}) == {p1}
    assert found(name="Grace,Ada") == {p1, p2}
    assert found(birthdate="1980-05-17") == {p1, p2}
    assert found(birthdate="1980") == {p1, p2}
    assert found(birthdate="1980-06") == set()
    assert found(birthdate="gt1980-05-17") == set()
    assert found(birthdate="ge1980-05-17") == {p1, p2}
    assert found(birthdate="lt1981") == {p1, p2}
    assert found(birthdate="le1980-05-16") == set()
    assert found(birthdate="ne1980") == set()
    assert found(gender="female") == {p1, p2}
    assert found(gender="http://hl7.org/fhir/administrative-gender|male") == set()
    assert found(**{"general-practitioner": f"Practitioner/{NAMELESS_ID}"}) == {p2}
    assert found(**{"general-practitioner": f"Location/{NAMELESS_ID}"}) == set()
    assert found(organization="Organization/alpha") == {p1, p2}
    assert found(organization="Organization/beta") == set()
    assert found(_lastUpdated="ge2000-01-01T00:00:00Z") == {p1, p2}
    assert found(_lastUpdated="lt2000") == set()
    # Repeated parameters are AND.
    response = client.get(f"{BASE}/Patient?birthdate=ge1980&birthdate=lt1980-05-17")
    assert ids(response.json()) == set()


def test_appointment_search_parameters(fc: FhirClinic) -> None:
    client = fc.client()

    def found(**query: str) -> set[str]:
        response = client.get(f"{BASE}/Appointment", query)
        assert response.status_code == 200, (query, response.content)
        return ids(response.json())

    a1, a2, short, cancelled = str(A1_ID), str(A2_ID), str(SHORT_ID), str(CANCELLED_ID)
    assert found() == {a1, a2, short, cancelled}
    day = BASE_TIME.date().isoformat()
    assert found(date=day) == {a1, a2}
    assert found(date=f"gt{day}") == {short, cancelled}
    assert found(date=f"ge{day}") == {a1, a2, short, cancelled}
    assert found(date=f"lt{day}") == set()
    assert found(date="eq2031-03-03T09:00:00Z") == {a1}
    assert found(date="2031-03-03T10:00+01:00") == {a1}
    assert found(date="le2031-03-03T09:00Z") == {a1}
    assert found(patient=f"Patient/{P1_ID}") == {a1, short}
    assert found(patient=str(P2_ID)) == {a2, cancelled}
    assert found(patient=f"http://{fc.world.host}/fhir/R4/Patient/{P1_ID}") == {a1, short}
    assert found(practitioner=f"Practitioner/{CLINICIAN_ID}") == {a1, a2}
    assert found(actor=f"Practitioner/{NAMELESS_ID}") == {short, cancelled}
    assert found(actor=f"Location/{F2_ID}") == {a2, cancelled}
    assert found(actor=f"Patient/{P1_ID},Location/{F2_ID}") == {a1, short, a2, cancelled}
    assert found(location=f"Location/{F1_ID}") == {a1, short}
    assert found(status="booked") == {a1, a2, short}
    assert found(status="cancelled") == {cancelled}
    assert found(status="booked,cancelled") == {a1, a2, short, cancelled}
    for bad in ("2031-03-03T09:00", "2031-13", "xx2031", "2031-02-30"):
        assert client.get(f"{BASE}/Appointment", {"date": bad}).status_code == 400, bad


def test_practitioner_location_organization_searches(fc: FhirClinic) -> None:
    client = fc.client()

    def found(resource_type: str, **query: str) -> set[str]:
        response = client.get(f"{BASE}/{resource_type}", query)
        assert response.status_code == 200, (query, response.content)
        return ids(response.json())

    clinician, nameless = str(CLINICIAN_ID), str(NAMELESS_ID)
    assert found("Practitioner") == {clinician, nameless}
    assert found("Practitioner", name="clin") == {clinician}
    assert found("Practitioner", name="alpha") == {clinician}
    assert found("Practitioner", identifier=f"urn:ietf:rfc:3986|urn:uuid:{NAMELESS_ID}") == {
        nameless
    }
    assert found("Practitioner", _id=clinician) == {clinician}
    assert found("Location") == {str(F1_ID), str(F2_ID)}
    assert found("Location", name="sou") == {str(F2_ID)}
    assert found("Location", identifier="N1") == {str(F1_ID)}
    assert found("Organization") == {"alpha"}
    assert found("Organization", _id="beta") == set()


def test_unknown_parameters_are_ignored_or_refused_when_strict(fc: FhirClinic) -> None:
    client = fc.client()
    lenient = client.get(f"{BASE}/Patient", {"family": "Hopper", "shoe-size": "42"})
    assert lenient.status_code == 200
    self_link = link(lenient.json(), "self")
    assert self_link == f"http://{fc.world.host}/fhir/R4/Patient?family=Hopper"
    for prefer in ("handling=strict", "return=minimal, handling=strict"):
        strict = client.get(
            f"{BASE}/Patient", {"family": "Hopper", "shoe-size": "42"}, HTTP_PREFER=prefer
        )
        assert strict.status_code == 400
        assert "shoe-size" in strict.json()["issue"][0]["diagnostics"]
    chained = client.get(
        f"{BASE}/Appointment", {"patient.name": "Ada"}, HTTP_PREFER="handling=strict"
    )
    assert chained.status_code == 400


def test_paging_with_absolute_links_reaches_every_row_once(fc: FhirClinic) -> None:
    with tenant_context(fc.world.tenant):
        facility = Facility.objects.get(pk=F1_ID)
        for i in range(5):
            make_patient(facility=facility, mrn=f"PG-{i}", family="Pager")
    client = fc.client()
    bundle = client.get(f"{BASE}/Patient", {"family": "Pager", "_count": "2", "junk": "1"}).json()
    assert bundle["type"] == "searchset"
    assert link(bundle, "self") == f"http://{fc.world.host}/fhir/R4/Patient?family=Pager&_count=2"
    seen: list[str] = []
    pages = 0
    while True:
        pages += 1
        for entry in bundle["entry"]:
            assert entry["search"] == {"mode": "match"}
            assert (
                entry["fullUrl"]
                == f"http://{fc.world.host}/fhir/R4/Patient/{entry['resource']['id']}"
            )
            seen.append(entry["resource"]["id"])
        next_url = link(bundle, "next")
        if next_url is None:
            break
        parts = urlsplit(next_url)
        assert parts.scheme == "http"
        assert parts.netloc == fc.world.host
        assert dict(parse_qsl(parts.query))["family"] == "Pager"
        bundle = client.get(f"{parts.path}?{parts.query}").json()
    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    # A larger page than the cap is lowered to it, not refused.
    assert client.get(f"{BASE}/Patient", {"_count": "100000"}).status_code == 200


def test_empty_search_is_a_bundle_without_entries(fc: FhirClinic) -> None:
    bundle = fc.client().get(f"{BASE}/Patient", {"family": "Nobody"}).json()
    assert bundle["resourceType"] == "Bundle"
    assert "entry" not in bundle
    assert link(bundle, "next") is None


# --- two tenants, colliding ids ----------------------------------------------------------------


def test_two_tenants_with_colliding_ids_never_cross(fc: FhirClinic, clinic_beta: Clinic) -> None:
    beta = fhir_clinic(clinic_beta)
    with tenant_context(beta.world.tenant):
        Patient.objects.filter(pk=P1_ID).update(family_name="Betaname")
    alpha_patient = fc.client().get(f"{BASE}/Patient/{P1_ID}").json()
    beta_patient = beta.client().get(f"{BASE}/Patient/{P1_ID}").json()
    assert alpha_patient["id"] == beta_patient["id"]
    assert alpha_patient["name"][0]["family"] == "Lovelace"
    assert beta_patient["name"][0]["family"] == "Betaname"
    # Same MRN value, different systems: the identifiers never collide.
    alpha_id, beta_id = alpha_patient["identifier"][0], beta_patient["identifier"][0]
    assert alpha_id["value"] == beta_id["value"] == "MRN-1"
    assert alpha_id["system"] != beta_id["system"]
    assert "/alpha/" in alpha_id["system"]
    assert "/beta/" in beta_id["system"]
    assert alpha_patient["managingOrganization"] == {"reference": "Organization/alpha"}
    assert beta_patient["managingOrganization"] == {"reference": "Organization/beta"}
    # Searching alpha by beta's identifier system finds nothing.
    assert (
        ids(fc.client().get(f"{BASE}/Patient", {"identifier": f"{beta_id['system']}|MRN-1"}).json())
        == set()
    )
    assert ids(fc.client().get(f"{BASE}/Patient", {"family": "Betaname"}).json()) == set()
    # Alpha's token on beta's host: 401, whatever the path.
    alpha_token = fc.token()
    on_beta = beta.world.client()
    on_beta.credentials(HTTP_AUTHORIZATION=f"Bearer {alpha_token}")
    for path in (f"{BASE}/Patient/{P1_ID}", f"{BASE}/Patient", f"{BASE}/Organization/beta"):
        response = on_beta.get(path)
        assert response.status_code == 401, path
        assert outcome_code(response) == "login"


def test_a_farm_tenant_has_no_fhir_base(fc: FhirClinic) -> None:
    from django.test import override_settings  # noqa: F401  (documentation: URL confs per kind)

    from settings.urls import tenant_urlpatterns
    from settings.urls_api import api_urlpatterns  # noqa: F401
    from tenants.models import Tenant

    farm_routes = [str(p.pattern) for p in tenant_urlpatterns(kind=Tenant.Kind.FARM, urlconf=None)]
    clinic_routes = [
        str(p.pattern) for p in tenant_urlpatterns(kind=Tenant.Kind.CLINIC, urlconf=None)
    ]
    assert "fhir/R4/" in clinic_routes
    assert "fhir/R4/" not in farm_routes


# --- query counts ------------------------------------------------------------------------------


@pytest.mark.parametrize("email", [None, CLINICIAN_EMAIL])
def test_searches_cost_the_same_queries_for_1_and_50_rows(
    fc: FhirClinic, email: str | None
) -> None:
    client = fc.client(email)
    with tenant_context(fc.world.tenant):
        facility = Facility.objects.get(pk=F1_ID)
        clinician = Appointment.objects.get(pk=A1_ID).clinician
    made = {"patients": 0}

    def add_rows(count: int) -> None:
        with tenant_context(fc.world.tenant):
            for _ in range(count):
                n = made["patients"]
                made["patients"] += 1
                patient = make_patient(
                    facility=facility, mrn=f"QC-{n}", family="Counted", assigned_clinician=clinician
                )
                make_appointment(
                    patient=patient,
                    clinician=clinician,
                    start=BASE_TIME.replace(year=2032)
                    + (n * (BASE_TIME - BASE_TIME.replace(hour=8))),
                    reason="Counted",
                )
                # Practitioners and Locations grow with them (for the clinician, the new
                # facilities stay out of scope: no grant on them).
                make_user(email=f"counted-{n}@example.com", role=Role.CLINICIAN, full_name="Cnt")
                Facility.objects.create(name=f"Counted {n}", code=f"QC{n}", timezone="UTC")

    def fetch_all() -> list[Any]:
        responses = [
            client.get(f"{BASE}/Patient", {"family": "Counted"}),
            client.get(f"{BASE}/Appointment", {"date": "ge2032"}),
            client.get(f"{BASE}/Practitioner", {"name": "Cnt"}),
            client.get(f"{BASE}/Location", {"name": "Counted"}),
        ]
        assert all(r.status_code == 200 for r in responses)
        return responses

    assert_constant_queries(
        fetch=fetch_all,
        add_rows=add_rows,
        expected_rows=lambda responses: len(responses[0].json().get("entry", [])),
    )
    responses = fetch_all()
    assert len(responses[2].json()["entry"]) == 50  # every type really grew to 50 rows
    assert len(responses[3].json().get("entry", [])) == (50 if email is None else 0)


def test_landline_has_no_use_and_mobile_is_mobile(fc: FhirClinic) -> None:
    client = fc.client()
    assert client.get(f"{BASE}/Patient/{P2_ID}").json()["telecom"] == [
        {"system": "phone", "value": LANDLINE}
    ]
