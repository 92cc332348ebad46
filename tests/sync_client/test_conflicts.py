"""Conflicts of every push policy with the real WatermelonDB client, in both timings:

- **between syncs**: the server changes a row while the device is offline with its own edit of
  it; the device's next ``synchronize()`` pulls (WatermelonDB merges the pulled row into the
  dirty one, or the conflict resolver decides) and then pushes;
- **between pull and push**: the server's change lands after the device's pull and before its
  push within the SAME ``synchronize()`` (``WmdbDevice.sync_with(before_push=…)``), so the push
  carries a stale ``version``.

``synchronize()`` never throws on a conflict (every sync command answers ok), and after every
scenario the device equals the server value for value, except where the policy leaves a
rejected edit on the device by design (asserted exactly, see the table).

| policy (tables) | between syncs | between pull and push |
|---|---|---|
| ``field_merge`` (farms, fields, plantings) | different columns: WatermelonDB keeps the local column and takes the rest and ``version`` from the pull, the push is ``applied``: both edits kept. Same column: the device's column wins (WatermelonDB's default resolution), ``applied`` | different columns: ``merged`` (both kept; the next pull brings the server's column). Same column: ``conflict``, in ``experimentalRejectedIds``, the row stays dirty; the next sync rebases it on the new version and it is ``applied`` (the device's column wins). The row's parent archived: ``rejected: dependency_missing``; the next pull's tombstone removes the row |
| ``reject`` (patients, appointments; a nurse with a facility grant) | the conflict resolver keeps the server's copy (same or different column), the local edit is dropped, nothing is pushed | ``conflict``, in ``experimentalRejectedIds``, stays dirty; the next sync's pull brings the server's row and the resolver drops the local edit (nothing pushed) |
| ``append_only`` (observations) | the author's edit within the grace period is ``applied``; after it (15 min) ``rejected: append_only``, the row stays dirty and is re-sent and rejected on every sync: the device differs from the server in exactly that row (``_status``/``_changed`` and the edited column). A correction as a new row with ``supersedes_id`` is ``applied``; setting the edited column back makes the next push ``duplicate`` and the row synced | the server archives the row (REST DELETE) after the pull: the pushed edit is ``gone``, in ``experimentalRejectedIds``; the next pull's tombstone removes it from the device |
| ``server_wins`` (crops) | a local edit is ``rejected: read_only``, stays dirty; a server edit of the same crop arriving does not clear it (the local column wins the merge); setting the value back is still ``rejected: read_only``, so a crop edit cannot be discarded through sync: the device differs in exactly that row | ``rejected: read_only`` (nothing else is decided) |
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.utils import timezone

from farms.models import Observation
from tests.security.world import USER_IDS
from tests.sync.wmdb import (
    ServerClient,
    WmdbDevice,
    assert_device_matches_server,
    device,
    device_differences,
    expected_device,
)
from tests.sync_client.conftest import ClientWorld
from tests.sync_client.helpers import (
    appointment_create,
    field_create,
    ids,
    local_observation,
    patient_create,
    planting_create,
    pushed_tables,
    results_by_id,
    tag,
)

CLINICIAN = str(USER_IDS["clinician"])


def _no_rejections(reply: dict[str, Any]) -> None:
    assert reply["ok"] is True
    assert not any(reply["log"]["rejectedIds"].values()), reply["log"]["rejectedIds"]


def _rejected(reply: dict[str, Any]) -> dict[str, list[str]]:
    assert reply["ok"] is True  # synchronize() did not throw
    return {table: sorted(ids) for table, ids in reply["log"]["rejectedIds"].items() if ids}


# --------------------------------------------------------------------------------------------
# field_merge


@dataclass(frozen=True)
class FarmRows:
    farm: str
    field: str
    planting: str


@pytest.fixture(scope="module")
def farm_rows(client_world: ClientWorld) -> FarmRows:
    """A farm of the agronomist's own (created through the API: the creator manages it), with a
    field and a planting: rows no other test edits."""
    rest = client_world.client(client_world.a, "agronomist", device_name=None)
    farm = rest.ok(
        rest.post("/api/v1/farms/", {"name": f"conflict farm {tag()}", "region": "north"}), 201
    )["id"]
    field = field_create(rest, farm=farm)
    return FarmRows(farm=farm, field=field, planting=planting_create(rest, field=field))


@pytest.fixture
def agronomist(cw: ClientWorld, farm_rows: FarmRows) -> Iterator[tuple[WmdbDevice, ServerClient]]:
    client = cw.client(cw.a, "agronomist", device_name="conflicts")
    cw.settle()
    with device(client, name="conflicts-agronomist") as phone:
        phone.sync()
        assert {farm_rows.field} <= ids(phone.dump(), "fields")
        yield phone, client


def test_field_merge_between_syncs(
    cw: ClientWorld, farm_rows: FarmRows, agronomist: tuple[WmdbDevice, ServerClient]
) -> None:
    phone, client = agronomist
    rest = cw.client(cw.a, "tenant_admin", device_name=None)
    # Offline edits on the device...
    region, field_name, season = (f"device {what} {tag()}" for what in ("region", "name", "season"))
    phone.update("farms", farm_rows.farm, {"region": region})
    phone.update("fields", farm_rows.field, {"name": field_name})
    phone.update("plantings", farm_rows.planting, {"season": season})
    # ...while the server edits the same rows: other columns of the farm and the planting, the
    # same column of the field.
    farm_name, server_field_name = f"server farm {tag()}", f"server name {tag()}"
    rest.ok(rest.patch(f"/api/v1/farms/{farm_rows.farm}/", {"name": farm_name}))
    rest.ok(rest.patch(f"/api/v1/farms/fields/{farm_rows.field}/", {"name": server_field_name}))
    rest.ok(
        rest.patch(
            f"/api/v1/farms/plantings/{farm_rows.planting}/",
            {"expected_harvest_on": "2026-09-30"},
        )
    )
    cw.settle()
    reply = phone.sync()
    _no_rejections(reply)
    resolved = _resolved(reply)
    for row_id in (farm_rows.farm, farm_rows.field, farm_rows.planting):
        assert resolved[row_id]["_status"] == "updated"  # merged, still to push
    assert resolved[farm_rows.farm]["region"] == region
    assert resolved[farm_rows.farm]["name"] == farm_name
    assert resolved[farm_rows.field]["name"] == field_name
    results = results_by_id(reply)
    for row_id in (farm_rows.farm, farm_rows.field, farm_rows.planting):
        # Pushed on top of the version just pulled: no conflict for the server to see.
        assert results[row_id]["status"] == "applied", results[row_id]

    farm = rest.ok(rest.get(f"/api/v1/farms/{farm_rows.farm}/"))
    assert (farm["name"], farm["region"]) == (farm_name, region)  # both kept
    assert rest.ok(rest.get(f"/api/v1/farms/fields/{farm_rows.field}/"))["name"] == field_name
    planting = rest.ok(rest.get(f"/api/v1/farms/plantings/{farm_rows.planting}/"))
    assert (planting["season"], planting["expected_harvest_on"]) == (season, "2026-09-30")

    cw.settle()
    phone.sync()
    assert_device_matches_server(phone, client)


def test_field_merge_between_pull_and_push(
    cw: ClientWorld, farm_rows: FarmRows, agronomist: tuple[WmdbDevice, ServerClient]
) -> None:
    phone, client = agronomist
    rest = cw.client(cw.a, "tenant_admin", device_name=None)
    season, field_name = f"device season {tag()}", f"device name {tag()}"
    server_name = f"server name {tag()}"
    phone.update("plantings", farm_rows.planting, {"season": season})
    phone.update("fields", farm_rows.field, {"name": field_name})
    events: list[dict[str, Any]] = []

    def server_edits(event: dict[str, Any]) -> None:
        events.append(event)
        rest.ok(
            rest.patch(
                f"/api/v1/farms/plantings/{farm_rows.planting}/",
                {"expected_harvest_on": "2026-10-31"},
            )
        )
        rest.ok(rest.patch(f"/api/v1/farms/fields/{farm_rows.field}/", {"name": server_name}))

    reply = phone.sync_with(before_push=server_edits)
    assert [event["event"] for event in events] == ["before_push"]
    results = results_by_id(reply)
    assert results[farm_rows.planting]["status"] == "merged", results[farm_rows.planting]
    assert results[farm_rows.planting]["merged_fields"] == ["season"]
    assert results[farm_rows.field]["status"] == "conflict", results[farm_rows.field]
    assert results[farm_rows.field]["conflicting_fields"] == ["name"]
    assert _rejected(reply) == {"fields": [farm_rows.field]}
    field_row = phone.record("fields", farm_rows.field)
    assert (field_row["_status"], field_row["name"]) == ("updated", field_name)
    assert "name" in field_row["_changed"].split(",")
    assert phone.record("plantings", farm_rows.planting)["_status"] == "synced"
    planting = rest.ok(rest.get(f"/api/v1/farms/plantings/{farm_rows.planting}/"))
    assert (planting["season"], planting["expected_harvest_on"]) == (season, "2026-10-31")
    assert rest.ok(rest.get(f"/api/v1/farms/fields/{farm_rows.field}/"))["name"] == server_name

    # The next sync pulls the server's field, keeps the local name (still changed) on the new
    # version, and the push is applied.
    cw.settle()
    again = phone.sync()
    _no_rejections(again)
    assert results_by_id(again)[farm_rows.field]["status"] == "applied"
    assert rest.ok(rest.get(f"/api/v1/farms/fields/{farm_rows.field}/"))["name"] == field_name
    cw.settle()
    phone.sync()
    assert_device_matches_server(phone, client)


def test_field_merge_parent_archived_between_pull_and_push(
    cw: ClientWorld, agronomist: tuple[WmdbDevice, ServerClient]
) -> None:
    """The planting's field is archived after the pull: the pushed edit is rejected
    (``dependency_missing``), and the next pull's tombstone removes the planting."""
    phone, client = agronomist
    rest = cw.client(cw.a, "agronomist", device_name=None)
    field = field_create(rest)
    planting = planting_create(rest, field=field)
    cw.settle()
    phone.sync()
    phone.update("plantings", planting, {"season": f"device {tag()}"})

    def archive(_event: dict[str, Any]) -> None:
        rest.ok(rest.delete(f"/api/v1/farms/fields/{field}/"), 204)

    reply = phone.sync_with(before_push=archive)
    result = results_by_id(reply)[planting]
    assert result["status"] == "rejected", result
    assert [error["code"] for error in result["errors"]] == ["dependency_missing"]
    assert _rejected(reply) == {"plantings": [planting]}
    cw.settle()
    again = phone.sync()
    assert "plantings" not in pushed_tables(again)
    dump = assert_device_matches_server(phone, client)
    assert {field, planting}.isdisjoint(ids(dump, "fields") | ids(dump, "plantings"))


def _resolved(reply: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """WatermelonDB's log of pulled rows that met a local change: id -> the resolved raw."""
    return {
        item["local"]["id"]: item["resolved"]
        for log in reply["logs"]
        for item in log["resolvedConflicts"]
    }


# --------------------------------------------------------------------------------------------
# reject


@dataclass(frozen=True)
class ClinicRows:
    patient: str
    appointment: str


@pytest.fixture(scope="module")
def clinic_rows(client_world: ClientWorld) -> ClinicRows:
    rest = client_world.client(client_world.a, "clinician", device_name=None)
    patient = patient_create(rest)
    return ClinicRows(
        patient=patient,
        appointment=appointment_create(rest, patient=patient, clinician=CLINICIAN),
    )


@pytest.fixture
def nurse(cw: ClientWorld, clinic_rows: ClinicRows) -> Iterator[tuple[WmdbDevice, ServerClient]]:
    """A nurse (manage grant on the facility) with a synced device."""
    client = cw.client(cw.a, "nurse", device_name="conflicts")
    cw.settle()
    with device(client, name="conflicts-nurse") as tablet:
        tablet.sync()
        dump = assert_device_matches_server(tablet, client)
        assert clinic_rows.patient in ids(dump, "patients")
        assert clinic_rows.appointment in ids(dump, "appointments")
        yield tablet, client


def test_reject_between_syncs_the_server_copy_wins(
    cw: ClientWorld, clinic_rows: ClinicRows, nurse: tuple[WmdbDevice, ServerClient]
) -> None:
    tablet, client = nurse
    rest = cw.client(cw.a, "clinician", device_name=None)
    tablet.update("patients", clinic_rows.patient, {"given_name": f"Device {tag()}"})
    tablet.update("appointments", clinic_rows.appointment, {"reason": f"device {tag()}"})
    # Another column of the patient, the same column of the appointment.
    family, reason = f"Server {tag()}", f"server {tag()}"
    patient_before = rest.ok(rest.get(f"/api/v1/clinical/patients/{clinic_rows.patient}/"))
    rest.ok(
        rest.patch(f"/api/v1/clinical/patients/{clinic_rows.patient}/", {"family_name": family})
    )
    rest.ok(
        rest.patch(f"/api/v1/clinical/appointments/{clinic_rows.appointment}/", {"reason": reason})
    )
    cw.settle()
    reply = tablet.sync()
    _no_rejections(reply)
    resolved = _resolved(reply)
    for row_id in (clinic_rows.patient, clinic_rows.appointment):
        assert (resolved[row_id]["_status"], resolved[row_id]["_changed"]) == ("synced", "")
    assert not {"patients", "appointments"} & pushed_tables(reply)  # the edits were dropped
    assert tablet.record("patients", clinic_rows.patient)["family_name"] == family
    assert (
        tablet.record("patients", clinic_rows.patient)["given_name"]
        == (patient_before["given_name"])
    )
    assert tablet.record("appointments", clinic_rows.appointment)["reason"] == reason
    assert_device_matches_server(tablet, client)


def test_reject_between_pull_and_push_conflicts_then_the_server_copy_wins(
    cw: ClientWorld, clinic_rows: ClinicRows, nurse: tuple[WmdbDevice, ServerClient]
) -> None:
    tablet, client = nurse
    rest = cw.client(cw.a, "clinician", device_name=None)
    tablet.update("patients", clinic_rows.patient, {"given_name": f"Device {tag()}"})
    tablet.update("appointments", clinic_rows.appointment, {"reason": f"device {tag()}"})
    family, reason = f"Server {tag()}", f"server {tag()}"

    def server_edits(event: dict[str, Any]) -> None:
        assert event["counts"]["patients"]["updated"] == 1
        rest.ok(
            rest.patch(f"/api/v1/clinical/patients/{clinic_rows.patient}/", {"family_name": family})
        )
        rest.ok(
            rest.patch(
                f"/api/v1/clinical/appointments/{clinic_rows.appointment}/", {"reason": reason}
            )
        )

    reply = tablet.sync_with(before_push=server_edits)
    results = results_by_id(reply)
    for row_id in (clinic_rows.patient, clinic_rows.appointment):
        assert results[row_id]["status"] == "conflict", results[row_id]
        assert results[row_id]["reason"] == "version_mismatch"
    assert _rejected(reply) == {
        "appointments": [clinic_rows.appointment],
        "patients": [clinic_rows.patient],
    }
    assert tablet.record("patients", clinic_rows.patient)["_status"] == "updated"
    server_patient = rest.ok(rest.get(f"/api/v1/clinical/patients/{clinic_rows.patient}/"))
    assert server_patient["family_name"] == family

    cw.settle()
    again = tablet.sync()
    _no_rejections(again)
    assert not {"patients", "appointments"} & pushed_tables(again)
    assert (
        tablet.record("patients", clinic_rows.patient)["given_name"]
        == (server_patient["given_name"])
    )
    assert tablet.record("appointments", clinic_rows.appointment)["reason"] == reason
    assert_device_matches_server(tablet, client)


# --------------------------------------------------------------------------------------------
# append_only


def _age(cw: ClientWorld, observation_id: str, minutes: int) -> None:
    """Make an observation older than the grace period (the server's created_at)."""
    with cw.schema(cw.a):
        Observation.objects.filter(pk=observation_id).update(
            created_at=timezone.now() - dt.timedelta(minutes=minutes)
        )


def test_append_only_edit_after_the_grace_period_is_rejected_and_a_correction_syncs(
    cw: ClientWorld, agronomist: tuple[WmdbDevice, ServerClient]
) -> None:
    phone, client = agronomist
    original = f"observed {tag()}"
    observation = phone.create("observations", local_observation(original))
    result = results_by_id(phone.sync())[observation]
    assert result["status"] == "applied", result
    cw.settle()  # the next pull brings it back with its version (test_lifecycle.py: why)
    # Within the grace period the author may still edit it.
    within = f"{original}, fixed within the grace"
    phone.update("observations", observation, {"text": within})
    result = results_by_id(phone.sync())[observation]
    assert result["status"] == "applied", result
    _age(cw, observation, minutes=60)
    cw.settle()
    phone.sync()
    assert_device_matches_server(phone, client)

    late = f"{original}, edited an hour later"
    phone.update("observations", observation, {"text": late})
    reply = phone.sync()
    result = results_by_id(reply)[observation]
    assert result["status"] == "rejected", result
    assert [error["code"] for error in result["errors"]] == ["append_only"]
    assert _rejected(reply) == {"observations": [observation]}
    # The one legitimate difference: the rejected edit stays on the device, dirty.
    problems = device_differences(
        phone.dump(),
        expected_device(client, schema_version=phone.schema_version),
        schema_version=phone.schema_version,
    )
    assert problems == [
        f"observations {observation}: _status='updated' _changed='text', not synced",
        f"observations {observation}.text: device {late!r} != server {within!r}",
    ]

    # The correction: a new row superseding it.
    correction = phone.create("observations", local_observation(late, supersedes_id=observation))
    reply = phone.sync()
    results = results_by_id(reply)
    assert results[correction]["status"] == "applied", results[correction]
    assert results[observation]["status"] == "rejected"  # re-sent, still rejected
    assert _rejected(reply) == {"observations": [observation]}
    # Discarding the edit: the old value back, the next push is a duplicate and the row synced.
    phone.update("observations", observation, {"text": within})
    reply = phone.sync()
    assert results_by_id(reply)[observation]["status"] == "duplicate"
    _no_rejections(reply)
    cw.settle()
    phone.sync()
    dump = assert_device_matches_server(phone, client)
    assert phone.record("observations", correction)["supersedes_id"] == observation
    assert {observation, correction} <= ids(dump, "observations")


def test_append_only_row_archived_between_pull_and_push_is_gone(
    cw: ClientWorld, agronomist: tuple[WmdbDevice, ServerClient]
) -> None:
    phone, client = agronomist
    rest = cw.client(cw.a, "tenant_admin", device_name=None)
    observation = phone.create("observations", local_observation(f"to archive {tag()}"))
    phone.sync()
    cw.settle()
    phone.sync()
    phone.update("observations", observation, {"text": f"edited {tag()}"})

    def archive(_event: dict[str, Any]) -> None:
        rest.ok(rest.delete(f"/api/v1/farms/observations/{observation}/"), 204)

    reply = phone.sync_with(before_push=archive)
    assert results_by_id(reply)[observation]["status"] == "gone"
    assert _rejected(reply) == {"observations": [observation]}
    assert phone.record("observations", observation)["_status"] == "updated"
    cw.settle()
    phone.sync()
    assert observation not in ids(assert_device_matches_server(phone, client), "observations")


# --------------------------------------------------------------------------------------------
# server_wins


def test_server_wins_a_crop_edit_is_rejected_read_only(cw: ClientWorld) -> None:
    rest = cw.client(cw.a, "tenant_admin", device_name=None)
    crop = rest.ok(
        rest.post("/api/v1/farms/crops/", {"name": f"Sorghum {tag()}", "category": "cereal"}),
        201,
    )
    client = cw.client(cw.a, "agronomist", device_name="conflicts crops")
    cw.settle()
    # A device of its own: the rejected edit cannot be cleared through sync (below).
    with device(client, name="conflicts-crops") as phone:
        phone.sync()
        local_name = f"renamed on the device {tag()}"
        phone.update("crops", crop["id"], {"name": local_name})
        reply = phone.sync()
        result = results_by_id(reply)[crop["id"]]
        assert result["status"] == "rejected", result
        assert [error["code"] for error in result["errors"]] == ["read_only"]
        assert _rejected(reply) == {"crops": [crop["id"]]}

        # A server edit of the same crop arrives: the local column still wins the merge.
        server_name = f"Sorghum bicolor {tag()}"
        rest.ok(rest.patch(f"/api/v1/farms/crops/{crop['id']}/", {"name": server_name}))
        cw.settle()
        reply = phone.sync()
        assert _rejected(reply) == {"crops": [crop["id"]]}
        expected = expected_device(client, schema_version=phone.schema_version)
        problems = device_differences(phone.dump(), expected, schema_version=phone.schema_version)
        assert problems == [
            f"crops {crop['id']}: _status='updated' _changed='name', not synced",
            f"crops {crop['id']}.name: device {local_name!r} != server {server_name!r}",
        ]
        # Setting the server's value back does not help: a crop push is read-only whatever
        # it holds, so the row stays dirty (the app can only leave crops alone).
        phone.update("crops", crop["id"], {"name": server_name})
        reply = phone.sync()
        assert results_by_id(reply)[crop["id"]]["status"] == "rejected"
        problems = device_differences(
            phone.dump(),
            expected_device(client, schema_version=phone.schema_version),
            schema_version=phone.schema_version,
        )
        assert problems == [f"crops {crop['id']}: _status='updated' _changed='name', not synced"]
