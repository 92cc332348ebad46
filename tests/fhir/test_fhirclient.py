"""SMART on FHIR's Python client (fhirclient, pinned) against the FHIR base on a real gunicorn:
it reads the CapabilityStatement (and stays with plain bearer tokens: no OAuth advertised),
reads, searches and pages through the base by its absolute next links — on a committed pair of
tenants with colliding ids (tests/security/world.py), as an admin and as a viewer.

The tenants' hosts (``<slug>.verdant.test``) are not in DNS: a requests transport adapter (the
documented extension point of the client's own ``requests`` session) sends them to the loopback
server with the host name kept in ``Host`` — name resolution only; every byte the client sends
and parses is its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from django.conf import settings
from django.db import connection
from django_tenants.utils import tenant_context
from fhirclient import client as fhir_client
from fhirclient.models.appointment import Appointment
from fhirclient.models.bundle import Bundle
from fhirclient.models.location import Location
from fhirclient.models.organization import Organization
from fhirclient.models.patient import Patient
from fhirclient.models.practitioner import Practitioner
from fhirclient.server import FHIRNotFoundException, FHIRUnauthorizedException
from requests.adapters import HTTPAdapter

from accounts.roles import Role
from clinical.models import Facility
from clinical.models import Patient as PatientRow
from tenants.models import Tenant
from tests.clinical.conftest import make_patient
from tests.security.live import LiveServer, live_gunicorn
from tests.security.world import B_ONLY, SHARED, USER_IDS, Side, World, world_create, world_drop

PREFIX = "fx"
PAGED = 7  # extra patients in A's F1, to page through


class LoopbackAdapter(HTTPAdapter):
    """Sends requests for ``*.<BASE_DOMAIN>`` to 127.0.0.1 (same port), keeping the host name
    in ``Host``, as DNS would."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        parts = urlsplit(request.url or "")
        if parts.hostname and parts.hostname.endswith(f".{settings.BASE_DOMAIN}"):
            request.headers["Host"] = parts.netloc
            request.url = urlunsplit(parts._replace(netloc=f"127.0.0.1:{parts.port}"))
        return super().send(request, **kwargs)


@dataclass(frozen=True)
class Live:
    server: LiveServer
    world: World

    def base(self, side: Side) -> str:
        return f"http://{side.host}:{self.server.port}/fhir/R4"

    def token(self, side: Side, role: str) -> str:
        session = requests.Session()
        session.mount("http://", LoopbackAdapter())
        response = session.post(
            f"http://{side.host}:{self.server.port}/api/v1/auth/token/",
            json=side.credentials(role),
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access"])

    def client(self, side: Side, role: str = Role.TENANT_ADMIN) -> fhir_client.FHIRClient:
        """fhirclient on ``side``'s base with ``role``'s bearer token."""
        smart = fhir_client.FHIRClient(
            settings={"app_id": "verdant-tests", "api_base": self.base(side)}
        )
        smart.server.session.mount("http://", LoopbackAdapter())
        smart.server.session.headers["Authorization"] = f"Bearer {self.token(side, role)}"
        return smart


@pytest.fixture(scope="module")
def live(django_db_setup: None, django_db_blocker: Any) -> Iterator[Live]:
    with django_db_blocker.unblock():
        assert not connection.in_atomic_block
        world = world_create(PREFIX)
        tenant = Tenant.objects.get(slug=world.a.slug)
        with tenant_context(tenant):
            facility = Facility.objects.get(pk=SHARED["clinical.facility"])
            for i in range(PAGED):
                make_patient(facility=facility, mrn=f"PAGE-{i}", family="Pager")
        try:
            with live_gunicorn(workers=1, name="fhirclient") as server:
                yield Live(server=server, world=world)
        finally:
            connection.close()
            world_drop(PREFIX)


def test_capability_statement_keeps_the_client_on_bearer_tokens(live: Live) -> None:
    smart = live.client(live.world.a)
    smart.server.get_capability()
    statement = smart.server.capabilityStatement
    assert statement.fhirVersion == "4.0.1"
    assert statement.kind == "instance"
    assert statement.implementation.url == live.base(live.world.a)
    # No OAuth endpoints advertised: fhirclient did not switch to an OAuth flow.
    assert smart.server.auth is None or smart.server.auth.auth_type == "none"
    assert {r.type for r in statement.rest[0].resource} == {
        "Patient",
        "Appointment",
        "Practitioner",
        "Location",
        "Organization",
    }


def test_read_every_type_and_follow_references(live: Live) -> None:
    smart = live.client(live.world.a)
    server = smart.server
    patient = Patient.read(str(SHARED["clinical.patient"]), server)
    assert patient.identifier[0].value == "MRN-1"
    assert patient.identifier[0].system.endswith(f"/fhir/sid/{live.world.a.slug}/mrn")
    assert patient.telecom[0].use == "mobile"
    practitioner = Practitioner.read(patient.generalPractitioner[0].reference.split("/")[1], server)
    assert practitioner.id == str(USER_IDS[Role.CLINICIAN])
    organization = Organization.read(patient.managingOrganization.reference.split("/")[1], server)
    assert organization.id == live.world.a.slug
    appointment = Appointment.read(str(SHARED["clinical.appointment"]), server)
    for participant in appointment.participant:
        kind, _, resource_id = participant.actor.reference.partition("/")
        model = {"Patient": Patient, "Practitioner": Practitioner, "Location": Location}[kind]
        assert model.read(resource_id, server).id == resource_id
    assert Location.read(str(SHARED["clinical.facility"]), server).name.endswith("North")


def test_search_and_page_through_absolute_next_links(live: Live) -> None:
    server = live.client(live.world.a).server
    search = Patient.where(struct={"family": "Pager", "_count": "3"})
    bundles = list(search.perform_iter(server))
    assert len(bundles) == 3  # 3 + 3 + 1
    assert all(isinstance(bundle, Bundle) for bundle in bundles)
    found = [entry.resource.id for bundle in bundles for entry in bundle.entry]
    assert len(found) == len(set(found)) == PAGED
    next_link = next(link.url for link in bundles[0].link if link.relation == "next")
    assert next_link.startswith(live.base(live.world.a) + "/Patient?")
    resources = list(
        Patient.where(struct={"family": "Pager", "_count": "2"}).perform_resources_iter(server)
    )
    assert len(resources) == PAGED
    appointments = list(
        Appointment.where(
            struct={"patient": f"Patient/{SHARED['clinical.patient']}"}
        ).perform_resources_iter(server)
    )
    assert [a.id for a in appointments] == [str(SHARED["clinical.appointment"])]


def test_viewer_gets_no_phones_through_the_client(live: Live) -> None:
    server = live.client(live.world.a, Role.VIEWER).server
    patients = list(Patient.where(struct={}).perform_resources_iter(server))
    assert patients
    assert all(p.telecom is None for p in patients)
    # Searching by a phone is not a viewer's parameter: ignored, it narrows nothing.
    by_phone = list(
        Patient.where(struct={"phone": "+4915112345678"}).perform_resources_iter(server)
    )
    assert {p.id for p in by_phone} == {p.id for p in patients}


def test_tenants_with_colliding_ids_never_cross(live: Live) -> None:
    a, b = live.world.a, live.world.b
    on_a = live.client(a).server
    on_b = live.client(b).server
    patient_a = Patient.read(str(SHARED["clinical.patient"]), on_a)
    patient_b = Patient.read(str(SHARED["clinical.patient"]), on_b)
    assert patient_a.id == patient_b.id
    assert patient_a.name[0].given == [a.marker]
    assert patient_b.name[0].given == [b.marker]
    assert patient_a.identifier[0].system != patient_b.identifier[0].system
    with pytest.raises(FHIRNotFoundException):
        Patient.read(str(B_ONLY["clinical.patient"]), on_a)
    every_a = list(Patient.where(struct={"_count": "50"}).perform_resources_iter(on_a))
    assert all(b.marker not in (p.name[0].given or [""])[0] for p in every_a)
    with tenant_context(Tenant.objects.get(slug=a.slug)):
        assert len(every_a) == PatientRow.objects.count()
    # A's token on B's base: refused.
    smart = fhir_client.FHIRClient(settings={"app_id": "verdant-tests", "api_base": live.base(b)})
    smart.server.session.mount("http://", LoopbackAdapter())
    smart.server.session.headers["Authorization"] = f"Bearer {live.token(a, Role.TENANT_ADMIN)}"
    with pytest.raises(FHIRUnauthorizedException) as refused:
        Patient.read(str(SHARED["clinical.patient"]), smart.server)
    assert refused.value.response.status_code == 401
    assert refused.value.response.json()["resourceType"] == "OperationOutcome"
