"""FHIR Bulk Data $export (issue 17, item 3): kick-off, polling, manifest, downloads, deletion,
expiry, overlap, too-fast polling, parameter errors, the REPEATABLE READ snapshot, roles and two
tenants with colliding ids. The run is the service the Celery task calls, here in-process (the
worker test is tests/clinical/test_bulk_export_worker.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from accounts.models import User
from audit.models import AuditEvent
from clinical import rules
from clinical.bulkdata import resources, services
from clinical.bulkdata.tasks import bulk_exports_purge_all
from clinical.models import Appointment, BulkExport, BulkExportStatus, Patient
from tests.clinical.bulk_world import (
    ADMIN,
    APPOINTMENTS,
    CLINICIAN,
    F1,
    PASSWORD,
    PATIENTS,
    RECEPTIONIST,
    VIEWER,
    BulkWorld,
    bulk_queue,
    bulk_tenants,
    committed_db,
    exports_clear,
)
from tests.committed import committed
from tests.fhir.validate import validate_fhir

__all__ = ["bulk_queue", "bulk_tenants", "committed_db"]  # fixtures, used by name

pytestmark = [pytest.mark.usefixtures("committed_db", "bulk_queue")]

PREFER: dict[str, Any] = {"HTTP_PREFER": "respond-async", "HTTP_ACCEPT": "application/fhir+json"}


@pytest.fixture
def a(bulk_tenants: dict[str, BulkWorld], settings: Any) -> Iterator[BulkWorld]:
    settings.FHIR_BULK_RETRY_AFTER_SECONDS = 0  # polls are never too fast unless a test says so
    world = bulk_tenants["bulk-a"]
    exports_clear(world)
    yield world
    exports_clear(world)


@pytest.fixture
def b(bulk_tenants: dict[str, BulkWorld]) -> Iterator[BulkWorld]:
    world = bulk_tenants["bulk-b"]
    exports_clear(world)
    yield world
    exports_clear(world)


def kickoff(client: APIClient, world: BulkWorld, path: str = "$export", **extra: Any) -> Any:
    return client.get(f"/fhir/R4/{path}", **{**PREFER, **extra})


def status_path(response: Any) -> str:
    return urlsplit(response["Content-Location"]).path


def run(world: BulkWorld) -> BulkExport | None:
    with schema_context(world.schema):
        return services.bulk_export_run_next()


def outcome_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["severity"] == "error"
    return dict(body)


def completed_export(client: APIClient, world: BulkWorld, path: str = "$export") -> dict[str, Any]:
    started = kickoff(client, world, path)
    assert started.status_code == 202, started.content
    run(world)
    done = client.get(status_path(started))
    assert done.status_code == 200, done.content
    return dict(done.json())


def lines(client: APIClient, url: str) -> list[dict[str, Any]]:
    response = client.get(urlsplit(url).path, HTTP_ACCEPT="application/fhir+ndjson")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/fhir+ndjson"
    body = b"".join(cast(Any, response).streaming_content).decode()
    response.close()
    assert body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def by_type(client: APIClient, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {item["type"]: lines(client, item["url"]) for item in manifest["output"]}


# --- the happy path ------------------------------------------------------------------------------


def test_kickoff_poll_manifest_download(a: BulkWorld) -> None:
    client = a.client()
    started = kickoff(client, a, "$export?_outputFormat=application/fhir%2Bndjson")
    assert started.status_code == 202, started.content
    location = started["Content-Location"]
    assert location.startswith(f"{a.base()}$export-status/")
    assert int(started["Retry-After"]) <= 1

    pending = client.get(status_path(started))
    assert pending.status_code == 202
    assert pending["X-Progress"]
    assert int(pending["Retry-After"]) >= 0

    export = run(a)
    assert export is not None
    done = client.get(status_path(started))
    assert done.status_code == 200, done.content
    assert done["Content-Type"] == "application/json"
    assert done["Expires"]
    manifest = done.json()
    assert manifest["requiresAccessToken"] is True
    assert manifest["error"] == []
    assert manifest["request"].startswith(f"{a.base()}$export")
    assert manifest["transactionTime"].endswith("Z")
    counts = {item["type"]: item["count"] for item in manifest["output"]}
    assert counts == {
        "Organization": 1,
        "Location": 2,
        "Practitioner": 1,
        "Patient": 5,
        "Appointment": 5,
    }
    files = by_type(client, manifest)
    for resource_type, resources_ in files.items():
        assert {r["resourceType"] for r in resources_} == {resource_type}
        assert len(resources_) == counts[resource_type]
    assert {p["id"] for p in files["Patient"]} == {str(pk) for pk in PATIENTS}
    # An admin sees phones, exactly as on a read.
    assert all("telecom" in p for p in files["Patient"])
    # Every line, every type: the official R4 JSON schema and the FHIRPath invariants.
    assert validate_fhir([r for rs in files.values() for r in rs]) == sum(counts.values())
    # Every reference resolves inside the export (referential integrity for a loader).
    ids = {(r["resourceType"], r["id"]) for rs in files.values() for r in rs}
    for appointment in files["Appointment"]:
        for participant in appointment["participant"]:
            kind, _, pk = participant["actor"]["reference"].partition("/")
            assert (kind, pk) in ids


def test_patient_level_defaults_and_type(a: BulkWorld) -> None:
    client = a.client()
    manifest = completed_export(client, a, "Patient/$export")
    assert {item["type"] for item in manifest["output"]} == {"Patient", "Appointment"}
    exports_clear(a)
    manifest = completed_export(client, a, "Patient/$export?_type=Patient,Location")
    assert {item["type"] for item in manifest["output"]} == {"Patient", "Location"}


def test_since_exports_only_later_changes(a: BulkWorld) -> None:
    client = a.client()
    first = completed_export(client, a, "$export?_type=Patient")
    exports_clear(a)
    with schema_context(a.schema):
        Patient.objects.filter(pk=PATIENTS[2]).update(
            given_name="Changed", updated_at=timezone.now()
        )
    since = first["transactionTime"]
    manifest = completed_export(client, a, f"$export?_type=Patient&_since={since}")
    patients = by_type(client, manifest)["Patient"]
    assert [p["id"] for p in patients] == [str(PATIENTS[2])]
    assert patients[0]["name"][0]["given"] == ["Changed"]


def test_export_is_audited_with_the_patient_ids(a: BulkWorld) -> None:
    client = a.client()
    before = timezone.now()
    completed_export(client, a, "$export?_type=Patient")
    with schema_context(a.schema):
        events = AuditEvent.objects.filter(
            action=AuditEvent.Action.EXPORT, object_type="clinical.patient", occurred_at__gte=before
        )
        exported = {pk for event in events for pk in event.object_ids}
        assert exported == set(PATIENTS)
        assert {event.actor_email for event in events} == {ADMIN}


# --- deletion, expiry ----------------------------------------------------------------------------


def test_delete_then_404_and_files_gone(a: BulkWorld) -> None:
    client = a.client()
    started = kickoff(client, a)
    run(a)
    with schema_context(a.schema):
        paths = [item["path"] for item in BulkExport.objects.get().output]
    assert paths
    assert all(default_storage.exists(path) for path in paths)
    deleted = client.delete(status_path(started))
    assert deleted.status_code == 202
    outcome_of(client.get(status_path(started)), 404)
    assert not any(default_storage.exists(path) for path in paths)


def test_delete_of_a_running_export_stops_it(a: BulkWorld) -> None:
    client = a.client()
    started = kickoff(client, a)
    assert client.delete(status_path(started)).status_code == 202
    # The worker finds no accepted export any more; a new kick-off is free at once.
    assert run(a) is None
    assert kickoff(client, a).status_code == 202


def test_expired_export_is_404_and_purged(a: BulkWorld) -> None:
    client = a.client()
    manifest = completed_export(client, a)
    with schema_context(a.schema):
        export = BulkExport.objects.get()
        paths = [item["path"] for item in export.output]
        BulkExport.objects.filter(pk=export.pk).update(
            expires_at=timezone.now() - timedelta(seconds=1)
        )
    outcome_of(client.get(f"/fhir/R4/$export-status/{export.pk}"), 404)
    outcome_of(client.get(urlsplit(manifest["output"][0]["url"]).path), 404)
    with schema_context(a.schema):
        assert services.bulk_exports_purge() == 1
        assert not BulkExport.objects.exists()
    assert not any(default_storage.exists(path) for path in paths)


def test_dead_run_is_failed_by_the_purge(a: BulkWorld, settings: Any) -> None:
    client = a.client()
    started = kickoff(client, a)
    with schema_context(a.schema):
        BulkExport.objects.update(created_at=timezone.now() - timedelta(hours=2))
        services.bulk_exports_purge()
    outcome_of(client.get(status_path(started)), 500)
    assert kickoff(client, a).status_code == 202


# --- overlap, too-fast polling ------------------------------------------------------------------


def test_second_export_while_one_runs_is_429(a: BulkWorld) -> None:
    client = a.client()
    assert kickoff(client, a).status_code == 202
    busy = kickoff(a.client(VIEWER), a, "Patient/$export")
    outcome_of(busy, 429)
    assert int(busy["Retry-After"]) >= 0


def test_polling_too_fast_is_429(a: BulkWorld, settings: Any) -> None:
    settings.FHIR_BULK_RETRY_AFTER_SECONDS = 30
    client = a.client()
    started = kickoff(client, a)
    assert started["Retry-After"] == "30"
    assert client.get(status_path(started)).status_code == 202
    too_fast = client.get(status_path(started))
    outcome_of(too_fast, 429)
    assert too_fast["Retry-After"] == "30"


# --- refused requests ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "headers", "status"),
    [
        ("_type=Observation", {}, 400),
        ("_type=", {}, 400),
        ("_since=yesterday", {}, 400),
        ("_since=2026-01-01", {}, 400),
        ("_outputFormat=text/csv", {}, 400),
        ("_typeFilter=Patient%3Factive%3Dtrue", {}, 400),
        ("_since=2026-01-01T00:00:00Z&_since=2026-01-02T00:00:00Z", {}, 400),
        ("", {"HTTP_PREFER": ""}, 400),
        ("", {"HTTP_ACCEPT": "text/csv"}, 406),
    ],
)
def test_bad_kickoff_is_an_operation_outcome(
    a: BulkWorld, query: str, headers: dict[str, str], status: int
) -> None:
    response = kickoff(a.client(), a, f"$export?{query}", **headers)
    outcome_of(response, status)
    with schema_context(a.schema):
        assert not BulkExport.objects.exists()


def test_lenient_handling_ignores_unsupported(a: BulkWorld) -> None:
    response = kickoff(
        a.client(),
        a,
        "$export?_typeFilter=x&_type=Patient,Observation",
        HTTP_PREFER="respond-async, handling=lenient",
    )
    assert response.status_code == 202, response.content


def test_file_download_refuses_other_types(a: BulkWorld) -> None:
    client = a.client()
    manifest = completed_export(client, a, "$export?_type=Patient")
    path = urlsplit(manifest["output"][0]["url"]).path
    outcome_of(client.get(path, HTTP_ACCEPT="text/csv"), 406)
    anything = client.get(path, HTTP_ACCEPT="*/*")
    assert anything.status_code == 200
    anything.close()
    outcome_of(client.get(path.replace("Patient.ndjson", "Appointment.ndjson")), 404)


def test_without_token_401(a: BulkWorld) -> None:
    outcome_of(APIClient(HTTP_HOST=a.host).get("/fhir/R4/$export", **PREFER), 401)


# --- roles -------------------------------------------------------------------------------------


def test_system_export_is_tenant_admin_only(a: BulkWorld) -> None:
    for email in (VIEWER, CLINICIAN, RECEPTIONIST):
        outcome_of(kickoff(a.client(email), a), 403)
    outcome_of(kickoff(a.client(RECEPTIONIST), a, "Patient/$export"), 403)


def test_export_lines_are_the_reads_resources(a: BulkWorld) -> None:
    """The export fetches named rows (not model instances) for Patients and Appointments; the
    same builder makes the same resource as a read of the FHIR base, phones' telecom.use
    included (stored with the phone, or parsed when a row has no stored verdict)."""
    with schema_context(a.schema):
        # One row with its verdict stored (as the write paths do), the rest without one.
        patient = Patient.all_objects.get(pk=PATIENTS[0])
        patient.phone_is_mobile = rules.phone_is_mobile(phone=patient.phone)
        patient.save(update_fields=["phone_is_mobile"])
    for email in (ADMIN, VIEWER):
        exports_clear(a)
        client = a.client(email)
        files = by_type(client, completed_export(client, a, "Patient/$export"))
        assert len(files["Patient"]) == len(PATIENTS)
        assert len(files["Appointment"]) == len(APPOINTMENTS)
        for resource_type in ("Patient", "Appointment"):
            for resource in files[resource_type]:
                read = client.get(
                    f"/fhir/R4/{resource_type}/{resource['id']}",
                    HTTP_ACCEPT="application/fhir+json",
                )
                assert read.status_code == 200, read.content
                assert read.json() == resource


def test_viewer_patient_export_has_no_phones(a: BulkWorld) -> None:
    client = a.client(VIEWER)
    manifest = completed_export(client, a, "Patient/$export")
    patients = by_type(client, manifest)["Patient"]
    assert len(patients) == len(PATIENTS)
    assert all("telecom" not in p for p in patients)
    assert "+49" not in json.dumps(patients)
    validate_fhir(patients)


def test_clinician_exports_only_their_facility(a: BulkWorld) -> None:
    client = a.client(CLINICIAN)
    manifest = completed_export(client, a, "Patient/$export?_type=Patient,Appointment,Location")
    files = by_type(client, manifest)
    in_f1 = {str(pk) for index, pk in enumerate(PATIENTS) if index % 2 == 0}
    assert {p["id"] for p in files["Patient"]} == in_f1
    assert all("telecom" in p for p in files["Patient"])  # clinicians see phones
    assert {loc["id"] for loc in files["Location"]} == {str(F1)}
    assert len(files["Appointment"]) == len(in_f1)


def test_status_and_files_are_the_requesters_only(a: BulkWorld) -> None:
    admin = a.client()
    manifest = completed_export(admin, a)
    with schema_context(a.schema):
        export_id = BulkExport.objects.get().pk
    other = a.client(VIEWER)
    outcome_of(other.get(f"/fhir/R4/$export-status/{export_id}"), 404)
    outcome_of(other.get(urlsplit(manifest["output"][0]["url"]).path), 404)
    outcome_of(other.delete(f"/fhir/R4/$export-status/{export_id}"), 404)


# --- two tenants ---------------------------------------------------------------------------------


def test_tenants_never_cross(a: BulkWorld, b: BulkWorld) -> None:
    """Same ids, same emails in both tenants: B's token on A's host is refused (401), and B's
    admin asking B's host for A's status or file path finds nothing (404)."""
    a_admin, b_admin = a.client(), b.client()
    manifest_a = completed_export(a_admin, a)
    with schema_context(a.schema):
        export_id = BulkExport.objects.get().pk
    status = f"/fhir/R4/$export-status/{export_id}"
    file_path = urlsplit(manifest_a["output"][0]["url"]).path

    outcome_of(b_admin.get(status), 404)
    outcome_of(b_admin.get(file_path), 404)
    outcome_of(b_admin.delete(status), 404)

    login_b = APIClient(HTTP_HOST=b.host).post(
        "/api/v1/auth/token/", {"email": ADMIN, "password": PASSWORD}, format="json"
    )
    on_a = APIClient(HTTP_HOST=a.host)
    on_a.credentials(HTTP_AUTHORIZATION=f"Bearer {login_b.json()['access']}")
    outcome_of(on_a.get(status), 401)
    outcome_of(on_a.get(file_path), 401)

    manifest_b = completed_export(b_admin, b)
    files_a, files_b = by_type(a_admin, manifest_a), by_type(b_admin, manifest_b)
    # The same patient ids, each tenant's own content.
    assert {p["id"] for p in files_a["Patient"]} == {p["id"] for p in files_b["Patient"]}
    assert {p["name"][0]["family"] for p in files_a["Patient"]} == {"bulk-a-family"}
    assert {p["name"][0]["family"] for p in files_b["Patient"]} == {"bulk-b-family"}
    identifiers_a = {i["system"] for p in files_a["Patient"] for i in p["identifier"]}
    identifiers_b = {i["system"] for p in files_b["Patient"] for i in p["identifier"]}
    assert identifiers_a.isdisjoint(identifiers_b)
    # Both tenants may run an export at once (the one-live-export rule is per tenant).
    exports_clear(a)
    exports_clear(b)
    assert kickoff(a_admin, a).status_code == 202
    assert kickoff(b_admin, b).status_code == 202


def _same_id_in(world: BulkWorld, export: BulkExport, **fields: Any) -> None:
    """A copy of ``export`` (same id, same stored-file paths) in ``world``, its admin's."""
    with schema_context(world.schema):
        BulkExport.objects.create(
            id=export.pk,
            requested_by=User.objects.get(email=ADMIN),
            level=export.level,
            request_url=export.request_url,
            resource_types=export.resource_types,
            output_format=export.output_format,
            **fields,
        )


def test_an_export_id_held_by_both_tenants_keeps_each_ones_files(
    a: BulkWorld, b: BulkWorld
) -> None:
    """B holds an export with A's export id whose output names A's stored files: B's admin is
    served none of them (404), and deleting B's export leaves A's files in place (a tenant's
    files are its schema's prefix)."""
    a_admin, b_admin = a.client(), b.client()
    manifest_a = completed_export(a_admin, a)
    with schema_context(a.schema):
        export_a = BulkExport.objects.get()
    paths = [item["path"] for item in export_a.output]
    _same_id_in(
        b,
        export_a,
        status=BulkExportStatus.COMPLETED,
        active=False,
        transaction_time=export_a.transaction_time,
        output=export_a.output,
        expires_at=export_a.expires_at,
    )
    for item in manifest_a["output"]:
        outcome_of(b_admin.get(urlsplit(item["url"]).path), 404)
    assert b_admin.delete(f"/fhir/R4/$export-status/{export_a.pk}").status_code == 202
    assert all(default_storage.exists(path) for path in paths)
    assert by_type(a_admin, manifest_a)["Patient"]


def test_cancelling_an_export_leaves_the_other_tenants_one_of_the_same_id(
    a: BulkWorld, b: BulkWorld
) -> None:
    """The cancellation travels through the cache, keyed by the export id: B cancelling its
    export of A's export id must not stop A's run (the cache keys are the tenant's)."""
    a_admin, b_admin = a.client(), b.client()
    started = kickoff(a_admin, a)
    assert started.status_code == 202, started.content
    with schema_context(a.schema):
        export_a = BulkExport.objects.get()
    _same_id_in(b, export_a)
    assert b_admin.delete(f"/fhir/R4/$export-status/{export_a.pk}").status_code == 202
    run(a)
    done = a_admin.get(status_path(started))
    assert done.status_code == 200, done.content
    assert {item["type"] for item in done.json()["output"]} >= {"Patient", "Appointment"}


# --- the snapshot --------------------------------------------------------------------------------


def test_a_write_during_the_run_is_not_in_the_files(
    a: BulkWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the run writes the Patient file, another connection commits a new patient and
    renames an exported one: the files show the snapshot of transactionTime, not the writes."""
    client = a.client()
    started = kickoff(client, a, "$export?_type=Patient,Appointment")
    original = resources.fhir.patient_resource
    written = threading.Event()
    new_id: list[Any] = []

    def concurrent_write() -> None:
        with schema_context(a.schema):
            Patient.objects.filter(pk=PATIENTS[0]).update(
                given_name="Renamed", updated_at=timezone.now()
            )
            late = Patient.objects.create(
                facility_id=F1,
                mrn="MRN-late",
                given_name="Late",
                family_name="Comer",
                birth_date="1990-01-01",
                sex="male",
            )
            new_id.append(late.pk)

    def build_and_write(**kwargs: Any) -> dict[str, Any]:
        if not written.is_set():
            committed(concurrent_write)
            written.set()
        return original(**kwargs)

    monkeypatch.setattr(resources.fhir, "patient_resource", build_and_write)
    try:
        run(a)
    finally:
        with schema_context(a.schema):
            Patient.objects.filter(pk__in=new_id).delete()
            Patient.objects.filter(pk=PATIENTS[0]).update(given_name="Given0")
    assert written.is_set()
    manifest = client.get(status_path(started)).json()
    patients = by_type(client, manifest)["Patient"]
    assert str(new_id[0]) not in {p["id"] for p in patients}
    first = next(p for p in patients if p["id"] == str(PATIENTS[0]))
    assert first["name"][0]["given"] == ["Given0"]
    assert len(patients) == len(PATIENTS)


def test_delete_while_running_stops_the_run_and_leaves_no_files(
    a: BulkWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DELETE lands while the worker writes the Appointment file (after the Patient file is
    complete): the run stops at its next chunk, and neither file is left in storage."""
    client = a.client()
    started = kickoff(client, a, "$export?_type=Patient,Appointment")
    original = resources.fhir.appointment_resource
    deleted: list[int] = []

    def build(**kwargs: Any) -> dict[str, Any]:
        if not deleted:
            deleted.append(committed(lambda: a.client().delete(status_path(started))).status_code)
        return original(**kwargs)

    monkeypatch.setattr(resources.fhir, "appointment_resource", build)
    with schema_context(a.schema):
        export_id = BulkExport.objects.get().pk
    run(a)
    assert deleted == [202]
    outcome_of(client.get(status_path(started)), 404)
    prefix = f"{a.schema}/fhir-bulk/{export_id}"
    assert not default_storage.exists(f"{prefix}/Patient.ndjson")
    assert not default_storage.exists(f"{prefix}/Appointment.ndjson")


def test_the_run_issues_no_query_per_row(a: BulkWorld) -> None:
    """The same statements for one patient and one appointment as for all of them: rows come
    from server-side cursors and audit events per chunk, never a query per resource."""
    client = a.client()

    def queries_of(query: str) -> tuple[int, int]:
        kickoff(client, a, f"$export?_type=Patient,Appointment,Practitioner,Location{query}")
        with CaptureQueriesContext(connection) as captured:
            export = run(a)
        assert export is not None
        with schema_context(a.schema):
            export.refresh_from_db()
            resources_ = sum(item["count"] for item in export.output)
        exports_clear(a)
        return len(captured.captured_queries), resources_

    everything, many = queries_of("")
    since = timezone.now()
    with schema_context(a.schema):
        Patient.objects.filter(pk=PATIENTS[1]).update(updated_at=timezone.now())
        Appointment.objects.filter(pk=APPOINTMENTS[1]).update(updated_at=timezone.now())
    one_each, few = queries_of(f"&_since={since.isoformat().replace('+00:00', 'Z')}")
    assert (many, few) == (2 * len(PATIENTS) + 3, 2)
    assert one_each == everything


def test_beat_purge_covers_every_clinic_tenant(a: BulkWorld, b: BulkWorld) -> None:
    """The beat task walks every serving clinic tenant: expired exports of both go, files too."""
    paths = []
    for world in (a, b):
        completed_export(world.client(), world, "$export?_type=Patient")
        with schema_context(world.schema):
            export = BulkExport.objects.get()
            paths += [item["path"] for item in export.output]
            BulkExport.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert bulk_exports_purge_all() >= 2
    for world in (a, b):
        with schema_context(world.schema):
            assert not BulkExport.objects.exists()
    assert not any(default_storage.exists(path) for path in paths)
