"""What the FHIR resources say (issue 17, item 2), and every resource the base emits checked by
the real peers: HL7's R4 JSON schema and the FHIRPath invariants (tests/fhir/validate.py)."""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django_tenants.utils import tenant_context

from clinical.fhir import resources as fhir
from clinical.models import Appointment
from clinical.projection import patient_projection_narrowest
from tenants.models import Domain, Tenant
from tenants.services import ProvisioningError, tenant_drop, tenant_provision
from tests.clinical.conftest import A1_ID, P1_ID, P2_ID, VIEWER_EMAIL
from tests.conftest import CLINICIAN_ID
from tests.fhir.validate import FhirValidationError, validate_fhir
from tests.fhir.world import (
    AGRONOMIST_EMAIL,
    BASE,
    CANCELLED_ID,
    LANDLINE,
    NAMELESS_ID,
    RESOURCE_TYPES,
    SHORT_ID,
    FhirClinic,
    empty_values,
)


def test_everything_the_base_emits_is_valid_r4(fc: FhirClinic) -> None:
    """Every resource type, as admin and as viewer, read and searched; the CapabilityStatement;
    an OperationOutcome of each error status; the REST API's FHIR actions — one batch."""
    from tests.apikit.test_throttling import give_plan

    emitted: list[dict[str, Any]] = []
    anonymous = fc.world.client()
    emitted.append(anonymous.get(f"{BASE}/metadata").json())
    for email in (None, VIEWER_EMAIL):
        client = fc.client(email)
        for resource_type in RESOURCE_TYPES:
            bundle = client.get(f"{BASE}/{resource_type}", {"_count": "3"}).json()
            emitted.append(bundle)
            for entry in bundle.get("entry", []):
                read = client.get(f"{BASE}/{resource_type}/{entry['resource']['id']}")
                emitted.append(read.json())
    admin = fc.client()
    emitted.append(admin.get(f"/api/v1/clinical/patients/{P1_ID}/fhir/").json())
    emitted.append(admin.get(f"/api/v1/clinical/appointments/{CANCELLED_ID}/fhir/").json())
    outcomes = [
        anonymous.get(f"{BASE}/Patient"),  # 401
        fc.client(AGRONOMIST_EMAIL).get(f"{BASE}/Patient"),  # 403
        admin.get(f"{BASE}/Patient/nobody"),  # 404
        admin.get(f"{BASE}/Nonsense"),  # 404, outside DRF
        admin.post(f"{BASE}/Patient", {}, format="json"),  # 405
        admin.get(f"{BASE}/Patient", HTTP_ACCEPT="application/fhir+xml"),  # 406
        admin.get(f"{BASE}/Patient", {"birthdate": "soon"}),  # 400
        admin.get(f"{BASE}/Patient", {"x": "1"}, HTTP_PREFER="handling=strict"),  # 400
    ]
    give_plan(fc.world, requests_per_minute=10_000, user_burst_per_minute=1)
    admin.get(f"{BASE}/metadata")
    outcomes += [admin.get(f"{BASE}/Patient") for _ in range(2)]
    assert {o.status_code for o in outcomes} == {400, 401, 403, 404, 405, 406, 429, 200}
    emitted += [o.json() for o in outcomes if o.status_code >= 400]

    assert not [path for resource in emitted for path in empty_values(resource)]
    checked = validate_fhir(emitted)
    assert checked > len(emitted)  # Bundle entries were checked as resources of their own


def test_the_validator_rejects_what_fhir_forbids() -> None:
    """The peer is really looking: empty strings, a bad code, a broken invariant all fail."""
    broken: list[dict[str, Any]] = [
        {"resourceType": "Patient", "id": "x", "name": [{"family": ""}]},
        {"resourceType": "Patient", "id": "y", "gender": "landline"},
        {
            "resourceType": "Appointment",
            "id": "z",
            "status": "booked",
            "start": "2031-03-03T09:00:00Z",
            "participant": [{"status": "accepted"}],
        },
    ]
    with pytest.raises(FhirValidationError) as failure:
        validate_fhir(broken)
    message = str(failure.value)
    assert "Patient/x" in message
    assert "Patient/y" in message
    assert "app-2" in message  # start without end
    assert "app-1" in message  # a participant with neither type nor actor


def test_content_rules(fc: FhirClinic) -> None:
    client = fc.client()
    patient = client.get(f"{BASE}/Patient/{P2_ID}").json()
    # A landline: no use (FHIR has no landline code).
    assert patient["telecom"] == [{"system": "phone", "value": LANDLINE}]
    assert patient["generalPractitioner"] == [{"reference": f"Practitioner/{NAMELESS_ID}"}]
    assert patient["managingOrganization"] == {"reference": "Organization/alpha"}
    # A clinician without a name has no name element (never display: "").
    nameless = client.get(f"{BASE}/Practitioner/{NAMELESS_ID}").json()
    assert "name" not in nameless
    assert client.get(f"{BASE}/Practitioner/{CLINICIAN_ID}").json()["name"] == [
        {"text": "alpha clinician"}
    ]
    # A 30-second appointment keeps start and end, and has no minutesDuration (must be >= 1).
    short = client.get(f"{BASE}/Appointment/{SHORT_ID}").json()
    assert "minutesDuration" not in short
    assert short["start"] < short["end"]
    normal = client.get(f"{BASE}/Appointment/{A1_ID}").json()
    assert normal["minutesDuration"] == 30
    # Facilities are always Locations; references carry no display.
    actors = [p["actor"] for p in normal["participant"]]
    assert [a["reference"].split("/")[0] for a in actors] == ["Patient", "Practitioner", "Location"]
    assert all(set(a) == {"reference"} for a in actors)
    cancelled = client.get(f"{BASE}/Appointment/{CANCELLED_ID}").json()
    assert cancelled["status"] == "cancelled"
    assert cancelled["cancelationReason"] == {"text": "Patient ill"}


def test_the_rest_actions_and_the_base_share_one_builder(fc: FhirClinic) -> None:
    for email in (None, VIEWER_EMAIL):
        client = fc.client(email)
        base = client.get(f"{BASE}/Patient/{P1_ID}").json()
        rest = client.get(f"/api/v1/clinical/patients/{P1_ID}/fhir/").json()
        assert base == rest
        assert client.get(f"{BASE}/Appointment/{A1_ID}").json() == (
            client.get(f"/api/v1/clinical/appointments/{A1_ID}/fhir/").json()
        )


@pytest.mark.parametrize(
    ("number", "use"),
    [
        ("+4915123456789", "mobile"),  # DE mobile
        ("+493012345678", None),  # DE fixed line
        ("+12025550123", None),  # US: FIXED_LINE_OR_MOBILE is not MOBILE
        ("+447911123456", "mobile"),  # UK mobile
        ("not a number", None),
    ],
)
def test_telecom_use_is_mobile_only_for_mobile_numbers(number: str, use: str | None) -> None:
    assert fhir.phone_use(number) == use


def test_mrn_system_is_the_tenants_and_never_the_hosts(fc: FhirClinic) -> None:
    tenant = fc.world.tenant
    assert tenant.mrn_system == f"https://{settings.BASE_DOMAIN}/fhir/sid/alpha/mrn"
    # Reached through another host name of the same tenant: the same system.
    Domain.objects.create(domain="alpha-fhir-alias.verdant.test", tenant=tenant, is_primary=False)
    from tenants.routing import get_router

    get_router().forget_local()
    alias = fc.client()
    alias.defaults["HTTP_HOST"] = "alpha-fhir-alias.verdant.test"
    via_alias = alias.get(f"{BASE}/Patient/{P1_ID}")
    assert via_alias.status_code == 200, via_alias.content
    assert via_alias.json()["identifier"][0]["system"] == tenant.mrn_system
    # ...while the links follow the host the client used.
    bundle = alias.get(f"{BASE}/Patient").json()
    assert bundle["link"][0]["url"].startswith("http://alpha-fhir-alias.verdant.test/fhir/R4/")


def test_provisioning_fixes_the_clinics_own_mrn_system(db: None) -> None:
    oid = "urn:oid:1.2.276.0.76.4.8"
    try:
        tenant = tenant_provision(
            slug="mrn-own",
            name="Own MRN clinic",
            kind=Tenant.Kind.CLINIC,
            admin_email="admin@mrn-own.example",
            admin_password="Own-Mrn-Pass-42",
            mrn_system=oid,
        ).tenant
        assert Tenant.objects.get(pk=tenant.pk).mrn_system == oid
        for bad in ("urn:verdant:mrn", "oid:1.2.3", "urn:oid:1.02", "https:// spaces"):
            with pytest.raises(ProvisioningError):
                tenant_provision(
                    slug="mrn-bad",
                    name="Bad",
                    kind=Tenant.Kind.CLINIC,
                    admin_email="admin@mrn-bad.example",
                    admin_password="Bad-Mrn-Pass-42",
                    mrn_system=bad,
                )
        assert not Tenant.objects.filter(slug="mrn-bad").exists()
    finally:
        if Tenant.objects.filter(slug="mrn-own").exists():
            tenant_drop(slug="mrn-own")


def test_the_data_migration_fixes_existing_tenants(fc: FhirClinic) -> None:
    migration = importlib.import_module("tenants.migrations.0006_tenant_fhir")
    Tenant.objects.filter(pk=fc.world.tenant.pk).update(mrn_system="")
    migration.mrn_systems_fix(django_apps, None)
    assert Tenant.objects.get(pk=fc.world.tenant.pk).mrn_system == (
        f"https://{settings.BASE_DOMAIN}/fhir/sid/alpha/mrn"
    )


def test_builders_fail_closed_and_leave_out_empty_values(fc: FhirClinic) -> None:
    with tenant_context(fc.world.tenant):
        appointment = Appointment.objects.get(pk=SHORT_ID)
        appointment.ends_at = appointment.starts_at + timedelta(minutes=1)
        assert fhir.appointment_resource(appointment=appointment)["minutesDuration"] == 1
        patient = appointment.patient
        patient.given_name = " "
        resource = fhir.patient_resource(
            patient=patient, projection=patient_projection_narrowest(), tenant=fc.world.tenant
        )
    assert "telecom" not in resource  # the narrowest projection hides the phone
    assert resource["name"] == [{"use": "official", "family": "Lovelace", "text": "Lovelace"}]
    assert not empty_values(resource)
