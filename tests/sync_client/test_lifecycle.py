"""Changes travelling both ways with the real WatermelonDB client: a device's local update and
deletes reach the server and a second device; edits and deletes made through REST and on a
second device reach the first, including a row deleted on the server that the device had
edited (its edit is lost, the row goes). After every step each device holds exactly what the
server lets its user see (``assert_device_matches_server``)."""

from __future__ import annotations

from tests.sync.wmdb import assert_device_matches_server, device
from tests.sync_client.conftest import ClientWorld
from tests.sync_client.helpers import (
    CROP,
    FIELD,
    field_create,
    ids,
    local_observation,
    observation_create,
    planting_create,
    precondition,
    pushed_tables,
    results_by_id,
    tag,
)


def test_local_update_and_deletes_reach_the_server_and_a_second_device(cw: ClientWorld) -> None:
    """A planting's season edited, a field deleted (markAsDeleted; its planting and observation
    go with it on every device), an observation deleted within the append-only grace period."""
    rest = cw.client(cw.a, "agronomist", device_name=None)
    planting = planting_create(rest)
    doomed_field = field_create(rest)
    child_planting = planting_create(rest, field=doomed_field)
    child_observation = observation_create(rest, field=doomed_field, planting=child_planting)
    phone_client = cw.client(cw.a, "agronomist", device_name="lifecycle phone")
    tablet_client = cw.client(cw.a, "agronomist", device_name="lifecycle tablet")
    cw.settle()
    with (
        device(phone_client, name="lifecycle-phone") as phone,
        device(tablet_client, name="lifecycle-tablet") as tablet,
    ):
        phone.sync()
        tablet.sync()
        assert {doomed_field, child_planting} <= ids(tablet.dump(), "fields") | ids(
            tablet.dump(), "plantings"
        )

        # An observation made on the phone and pushed, to be deleted within the grace period.
        observation = phone.create("observations", local_observation(f"to delete {tag()}"))
        assert results_by_id(phone.sync())[observation]["status"] == "applied"

        season = f"edited on the phone {tag()}"
        phone.update("plantings", planting, {"season": season})
        phone.delete("fields", doomed_field)
        phone.delete("observations", observation)
        reply = phone.sync()
        [push] = reply["pushes"]
        assert push["counts"]["plantings"] == {"created": 0, "updated": 1, "deleted": 0}
        assert push["counts"]["fields"] == {"created": 0, "updated": 0, "deleted": 1}
        assert push["counts"]["observations"] == {"created": 0, "updated": 0, "deleted": 1}
        results = results_by_id(reply)
        for row_id in (planting, doomed_field, observation):
            assert results[row_id]["status"] == "applied", results[row_id]
        assert not any(reply["log"]["rejectedIds"].values())

        # The server has them (REST), and answers 404 for everything deleted or under it.
        assert rest.ok(rest.get(f"/api/v1/farms/plantings/{planting}/"))["season"] == season
        assert rest.get(f"/api/v1/farms/fields/{doomed_field}/").status_code == 404
        assert rest.get(f"/api/v1/farms/observations/{observation}/").status_code == 404
        assert rest.get(f"/api/v1/farms/plantings/{child_planting}/").status_code == 404
        assert rest.get(f"/api/v1/farms/observations/{child_observation}/").status_code == 404

        cw.settle()
        phone.sync()
        dump = assert_device_matches_server(phone, phone_client)
        assert doomed_field not in ids(dump, "fields")
        assert child_planting not in ids(dump, "plantings")  # went with its field
        assert {observation, child_observation}.isdisjoint(ids(dump, "observations"))

        tablet.sync()
        dump = assert_device_matches_server(tablet, tablet_client)
        assert tablet.record("plantings", planting)["season"] == season
        assert doomed_field not in ids(dump, "fields")
        assert child_planting not in ids(dump, "plantings")
        assert {observation, child_observation}.isdisjoint(ids(dump, "observations"))


def test_rest_and_second_device_changes_arrive_and_a_server_delete_beats_a_local_edit(
    cw: ClientWorld,
) -> None:
    rest = cw.client(cw.a, "agronomist", device_name=None)
    renamed_field = field_create(rest)
    rest_deleted = observation_create(rest)
    tablet_edited = planting_create(rest)
    server_deleted = planting_create(rest)  # edited on the phone, deleted on the server
    phone_client = cw.client(cw.a, "agronomist", device_name="arrive phone")
    tablet_client = cw.client(cw.a, "agronomist", device_name="arrive tablet")
    cw.settle()
    with (
        device(phone_client, name="arrive-phone") as phone,
        device(tablet_client, name="arrive-tablet") as tablet,
    ):
        tablet.sync()
        tablet_observation = tablet.create("observations", local_observation(f"tablet {tag()}"))
        assert results_by_id(tablet.sync())[tablet_observation]["status"] == "applied"
        cw.settle()
        phone.sync()
        before = assert_device_matches_server(phone, phone_client)
        assert tablet_observation in ids(before, "observations")
        assert {tablet_edited, server_deleted} <= ids(before, "plantings")

        # The phone edits a planting that the server is about to delete.
        phone.update("plantings", server_deleted, {"season": f"lost edit {tag()}"})
        # REST: an update and a delete.
        name = f"renamed by REST {tag()}"
        rest.ok(rest.patch(f"/api/v1/farms/fields/{renamed_field}/", {"name": name}))
        rest.ok(rest.delete(f"/api/v1/farms/observations/{rest_deleted}/"), 204)
        rest.ok(rest.delete(f"/api/v1/farms/plantings/{server_deleted}/"), 204)
        # The second device: an update and a delete (its own observation, within the grace).
        season = f"tablet season {tag()}"
        tablet.update("plantings", tablet_edited, {"season": season})
        tablet.delete("observations", tablet_observation)
        results = results_by_id(tablet.sync())
        assert results[tablet_edited]["status"] == "applied", results
        assert results[tablet_observation]["status"] == "applied", results

        cw.settle()
        reply = phone.sync()
        # The pulled tombstone removed the locally edited planting before the push: its edit
        # was never sent.
        assert "plantings" not in pushed_tables(reply)
        dump = assert_device_matches_server(phone, phone_client)
        assert server_deleted not in ids(dump, "plantings")
        assert phone.record("fields", renamed_field)["name"] == name
        assert phone.record("plantings", tablet_edited)["season"] == season
        assert {rest_deleted, tablet_observation}.isdisjoint(ids(dump, "observations"))
        assert rest.get(f"/api/v1/farms/plantings/{server_deleted}/").status_code == 404

        cw.settle()
        tablet.sync()
        assert_device_matches_server(tablet, tablet_client)


def test_an_edit_of_a_pushed_row_not_yet_pulled_back_is_applied(cw: ClientWorld) -> None:
    """Create, sync, edit, sync: WatermelonDB marks a pushed row synced without the server's
    values (docs/sync.md: "the next pull sends every row you pushed back once"), so until a pull
    brings it back its ``version`` is the column's empty value, 0. The pull of the next sync
    does not bring it when the server's watermark has not passed the push yet (another writer's
    transaction still open: ``watermark_held``), and the edit is pushed as an update with
    ``version: 0``. The server reads 0 as "no base version" (like ``null``: an update of version
    1), so the edit is applied (it was rejected ``invalid`` on ``version`` before)."""
    client = cw.client(cw.a, "agronomist", device_name="lifecycle version 0")
    cw.settle()
    with device(client, name="lifecycle-version-0") as phone:
        with precondition():
            phone.sync()
            planting = phone.create(
                "plantings",
                {
                    "field_id": FIELD,
                    "crop_id": CROP,
                    "season": f"device planting {tag()}",
                    "planted_on": "2026-03-02",
                    "status": "planned",
                },
            )
            observation = phone.create("observations", local_observation(f"created {tag()}"))
            with cw.watermark_held():
                created = results_by_id(phone.sync())
                assert created[planting]["status"] == "applied", created[planting]
                assert created[observation]["status"] == "applied", created[observation]
                assert phone.record("plantings", planting)["version"] == 0  # not pulled back
                phone.update("plantings", planting, {"season": f"edited {tag()}"})
                phone.update("observations", observation, {"text": f"edited {tag()}"})
                reply = phone.sync()
                pulled = reply["pulls"][0]["counts"]
                assert pulled["plantings"]["updated"] == pulled["observations"]["updated"] == 0
        results = results_by_id(reply)
        assert results[planting]["status"] == "applied", results[planting]
        assert results[observation]["status"] == "applied", results[observation]
        cw.settle()
        phone.sync()
        assert_device_matches_server(phone, client)
