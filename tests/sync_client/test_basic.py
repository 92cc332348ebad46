"""The real WatermelonDB client against the live server: first sync, a local create pushed and
pulled back, a REST edit arriving, a push retried with its key, another tenant's token, the
schema migration handed to the pull. Every comparison is value for value in the wire types of
tests/sync/wmdb_client/schema.json (epoch ms datetimes, JSON text)."""

from __future__ import annotations

import json
import uuid

from tests.security.world import SHARED
from tests.sync.wmdb import assert_device_matches_server, device
from tests.sync_client.conftest import ClientWorld
from tests.sync_client.helpers import local_observation

FARM = str(SHARED["farms.farm"])
FARM_2 = str(SHARED["farms.farm#2"])
FIELD = str(SHARED["farms.field"])
PLANTING = str(SHARED["farms.planting"])


def test_first_sync_brings_what_an_agronomist_with_one_farm_sees(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-first") as phone:
        reply = phone.sync()
        # The first sync is one response (the server streams everything), whatever the limit.
        assert reply["rounds"] == 1
        assert reply["pulls"][0]["status"] == 200
        assert reply["pulls"][0]["experimentalStrategy"] in ("replacement", "incremental")
        assert reply["pushes"] == []  # nothing local to push
        dump = assert_device_matches_server(phone, client)

        assert [row["id"] for row in dump["farms"]] == [FARM]  # the granted farm, not farm 2
        assert dump["farms"][0]["name"] == f"{cw.a.marker} farm"
        assert FIELD in {row["id"] for row in dump["fields"]}
        assert FARM_2 not in json.dumps(dump)
        assert cw.b.marker not in json.dumps(dump)  # the colliding ids are A's rows
        assert dump["patients"] == dump["appointments"] == []  # an agronomist has no facility
        status = phone.status()
        assert status["cursor"]
        assert not status["has_unsynced_changes"]

        # Nothing changed: the next sync pulls nothing and leaves the device as it was.
        cw.settle()
        again = phone.sync()
        assert again["pulls"][0]["experimentalStrategy"] == "incremental"
        assert again["log"]["remoteChangeCount"] == 0
        assert phone.dump() == dump


def test_local_create_is_pushed_and_pulled_back(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-create") as phone:
        phone.sync()
        text = f"wmdb create {uuid.uuid4()}"
        obs_id = phone.create("observations", local_observation(text))
        uuid.UUID(obs_id)  # the app's generator: canonical lower-case UUIDs
        assert obs_id == obs_id.lower()
        assert phone.record("observations", obs_id)["_status"] == "created"

        pushed = phone.sync()
        [push] = pushed["pushes"]
        assert push["status"] == 200, push
        assert push["counts"]["observations"] == {"created": 1, "updated": 0, "deleted": 0}
        [result] = [r for r in push["body"]["results"] if r["id"] == obs_id]
        assert result["status"] == "applied", result
        assert push["body"]["experimentalRejectedIds"] in ({}, {"observations": []})
        assert phone.record("observations", obs_id)["_status"] == "synced"

        server_copy = client.ok(client.get(f"/api/v1/farms/observations/{obs_id}/"))
        assert server_copy["text"] == text

        # The next pull brings the row back with what the server set (version, author, device).
        cw.settle()
        phone.sync()
        dump = assert_device_matches_server(phone, client)
        [row] = [r for r in dump["observations"] if r["id"] == obs_id]
        assert row["version"] == 1
        assert row["recorded_by_id"] == server_copy["recorded_by"]

        # A second device of the same user gets it on its first sync.
        with device(client, name="agronomist-create-2") as tablet:
            tablet.sync()
            assert tablet.record("observations", obs_id)["text"] == text


def test_rest_edit_arrives_on_the_device(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-rest") as phone:
        phone.sync()
        before = phone.record("plantings", PLANTING)
        season = f"{cw.a.marker} season {uuid.uuid4().hex[:8]}"
        client.ok(client.patch(f"/api/v1/farms/plantings/{PLANTING}/", {"season": season}))

        cw.settle()
        reply = phone.sync()
        assert reply["pulls"][0]["counts"]["plantings"]["updated"] == 1
        after = phone.record("plantings", PLANTING)
        assert after["season"] == season
        assert after["version"] > before["version"]
        assert after["_status"] == "synced"
        assert_device_matches_server(phone, client)


def test_push_retried_with_the_same_key_is_replayed(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-replay") as phone:
        phone.sync()
        obs_id = phone.create("observations", local_observation(f"wmdb replay {uuid.uuid4()}"))
        reply = phone.sync(replay_push=True)
        first, second = reply["pushes"]
        assert second["idempotency_key"] == first["idempotency_key"]
        assert (first["replayed"], second["replayed"]) == (False, True)
        assert second["body"] == first["body"]
        assert phone.record("observations", obs_id)["_status"] == "synced"


def test_a_token_of_the_other_tenant_is_refused(cw: ClientWorld) -> None:
    b_token = cw.login(cw.b, "agronomist")
    a_client = cw.client(cw.a, "agronomist")
    with device(a_client, name="wrong-tenant") as phone:
        phone.set_token(b_token)  # B's token, sent to A's host
        reply = phone.sync(expect_ok=False)
        assert reply["ok"] is False
        assert reply["status"] == 401
        assert reply["error"]["error"]["code"] == "token_not_valid"
        assert [pull["status"] for pull in reply["pulls"]] == [401]
        assert reply["pushes"] == []
        assert all(rows == [] for rows in phone.dump().values())
        assert phone.status()["cursor"] is None


def test_schema_migration_is_passed_to_pull(cw: ClientWorld) -> None:
    """A device synced at schema version 1 upgrades to 2: WatermelonDB migrates the local
    database (table harvests, column farms.timezone) and its next pull names the migration
    (what the server then sends: test_scenarios.py, (g))."""
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-migrate") as phone:
        phone.sync()
        before = phone.dump()
        assert "harvests" not in before
        assert "timezone" not in before["farms"][0]
        phone.migrate_to(2)
        migrated = phone.dump()
        assert migrated["harvests"] == []
        assert migrated["farms"][0]["timezone"] == ""  # added column, not yet pulled
        assert migrated["fields"] == before["fields"]  # the data survived the migration

        reply = phone.sync()
        pull = reply["pulls"][0]
        assert pull["schemaVersion"] == 2
        assert pull["sent_cursor"] is True
        assert pull["migration"] == {
            "from": 1,
            "tables": ["harvests"],
            "columns": [{"table": "farms", "columns": ["timezone"]}],
        }
