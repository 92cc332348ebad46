"""Real-client scenarios of the WatermelonDB wire: (a) a revoked grant synced in pages, (b) a
device edit then a server edit, (c) JSON text, (d) epoch ms, (e) ids, (f) units, (g) a schema
migration, (h) a lost push answer, (i) the push's cursor."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from tests.security.world import SHARED, USER_IDS
from tests.sync.wmdb import ServerClient, assert_device_matches_server, device, expected_device
from tests.sync_client.conftest import ClientWorld
from tests.sync_client.helpers import local_observation

FARM = str(SHARED["farms.farm"])
FARM_2 = str(SHARED["farms.farm#2"])
FIELD = str(SHARED["farms.field"])
FIELD_2 = str(SHARED["farms.field#2"])
PLANTING = str(SHARED["farms.planting"])
FIELD_AGENT = str(USER_IDS["field_agent"])


def _observations(admin: ServerClient, field_id: str, count: int, label: str) -> None:
    stamp = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    for n in range(count):
        admin.ok(
            admin.post(
                "/api/v1/farms/observations/",
                {
                    "field": field_id,
                    "observed_at": (stamp + dt.timedelta(minutes=n)).isoformat(),
                    "kind": "rainfall",
                    "value": n,
                    "unit": "mm",
                    "text": f"{label} {n}",
                },
            ),
            201,
        )


def test_a_revoked_grant_synced_in_pages_keeps_what_is_still_visible(cw: ClientWorld) -> None:
    """(a) The field agent sees farm 1 and farm 2; farm 1's grant is revoked; the next sync at
    limit=5 takes several pages. WatermelonDB applies a pull's ``experimentalStrategy`` per
    ``synchronize()`` call, i.e. per page (a ``replacement`` page destroys every local row that
    page does not carry), so every page must leave the rows still visible in place, and the
    rows of farm 1 must all go."""
    admin = cw.client(cw.a, "tenant_admin")
    admin.ok(admin.post(f"/api/v1/farms/{FARM_2}/access/", {"user": FIELD_AGENT, "level": "view"}))
    _observations(admin, FIELD_2, 3, "still visible")
    _observations(admin, FIELD, 6, "lost with the grant")  # a long enough change set to page
    agent = cw.client(cw.a, "field_agent")
    try:
        cw.settle()
        with device(agent, limit=5, name="agent-paged") as phone:
            phone.sync()
            before = assert_device_matches_server(phone, agent)
            assert FIELD in {row["id"] for row in before["fields"]}
            assert FIELD_2 in {row["id"] for row in before["fields"]}

            admin.ok(admin.delete(f"/api/v1/farms/{FARM}/access/{FIELD_AGENT}/"), 204)
            cw.settle()
            reply = phone.sync()
            assert len(reply["pulls"]) > 1, reply["pulls"]  # really paged
            dump = assert_device_matches_server(phone, agent)
            assert [row["id"] for row in dump["farms"]] == [FARM_2]
            assert FIELD not in {row["id"] for row in dump["fields"]}
            assert {row["field_id"] for row in dump["observations"]} == {FIELD_2}
    finally:
        admin.post(f"/api/v1/farms/{FARM}/access/", {"user": FIELD_AGENT, "level": "view"})
        admin.delete(f"/api/v1/farms/{FARM_2}/access/{FIELD_AGENT}/")


def test_b_device_edit_then_server_edit_converges(cw: ClientWorld) -> None:
    """(b) The device renames a field and pushes; then the server renames it again through
    REST; after the next sync the device and the server agree."""
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-edit") as phone:
        phone.sync()
        device_name = f"device name {uuid.uuid4().hex[:8]}"
        phone.update("fields", FIELD, {"name": device_name})
        pushed = phone.sync()
        [push] = pushed["pushes"]
        [result] = [r for r in push["body"]["results"] if r["id"] == FIELD]
        assert result["status"] in ("applied", "merged"), result
        assert client.ok(client.get(f"/api/v1/farms/fields/{FIELD}/"))["name"] == device_name

        server_name = f"server name {uuid.uuid4().hex[:8]}"
        client.ok(client.patch(f"/api/v1/farms/fields/{FIELD}/", {"name": server_name}))
        cw.settle()
        phone.sync()
        assert phone.record("fields", FIELD)["name"] == server_name
        assert_device_matches_server(phone, client)


def test_c_boundary_arrives_as_json_text(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-boundary") as phone:
        reply = phone.sync()
        assert reply["log"]["remoteChangeCount"] > 0
        row = phone.record("fields", FIELD)
        server_boundary = client.ok(client.get(f"/api/v1/farms/fields/{FIELD}/"))["boundary"]
        assert isinstance(row["boundary"], str)
        assert row["boundary"]
        assert json.loads(row["boundary"]) == server_boundary
        assert phone.read("fields", FIELD)["boundaryJson"] == server_boundary
        assert_device_matches_server(phone, client)


def test_d_datetimes_arrive_as_epoch_ms(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-ms") as phone:
        phone.sync()
        farm = phone.record("farms", FARM)
        server_farm = client.ok(client.get(f"/api/v1/farms/{FARM}/"))
        created = dt.datetime.fromisoformat(server_farm["created_at"].replace("Z", "+00:00"))
        assert isinstance(farm["created_at"], int)
        assert farm["created_at"] > 0
        assert abs(farm["created_at"] - created.timestamp() * 1000) < 1
        read = phone.read("farms", FARM)
        assert read["serverCreatedAt"]["ms"] == farm["created_at"]
        assert_device_matches_server(phone, client)


def test_e_default_wmdb_id_is_refused_but_a_uuid_works(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-ids") as phone:
        phone.sync()
        short = phone.create("observations", local_observation("short id"), id_style="wmdb")
        assert len(short) == 16
        good = phone.create("observations", local_observation("uuid id"))
        reply = phone.sync()
        [push] = reply["pushes"]
        assert push["status"] == 200, push
        results = {r["id"]: r for r in push["body"]["results"]}
        assert results[short]["status"] == "rejected"
        assert results[good]["status"] == "applied"
        assert reply["log"]["rejectedIds"] == {"observations": [short]}
        assert phone.record("observations", short)["_status"] == "created"  # kept, unsynced
        assert phone.record("observations", good)["_status"] == "synced"


def test_f_pushed_unit_comes_back_normalised(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-units") as phone:
        phone.sync()
        obs_id = phone.create("observations", local_observation("in cm", value=2.5, unit="cm"))
        phone.sync()
        cw.settle()
        phone.sync()
        row = phone.record("observations", obs_id)
        assert (row["unit"], row["value"], row["_status"]) == ("mm", 25, "synced")
        assert_device_matches_server(phone, client)


def test_g_schema_migration_sync_brings_new_table_and_column(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-v2") as phone:
        phone.sync()
        phone.migrate_to(2)
        reply = phone.sync()
        assert reply["pulls"][0]["migration"]["tables"] == ["harvests"]
        dump = assert_device_matches_server(phone, client)
        assert dump["harvests"]
        assert all(farm["timezone"] for farm in dump["farms"])


def test_h_dropped_push_answer_is_resent_under_a_new_key_and_written_once(
    cw: ClientWorld,
) -> None:
    """(h) The connection dies after the server answered a push: WatermelonDB keeps the rows
    dirty. The next sync first pulls the row back (WatermelonDB resolves the server's copy onto
    the still-``created`` local row), then pushes it again under a NEW Idempotency-Key (the app
    cannot know the first one landed): the server answers ``duplicate``, nothing is written
    twice. (With ISO datetimes on the wire the pulled ``observed_at`` became 0 on the device and
    the resent create overwrote the server's row with 1970-01-01.)"""
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-drop") as phone:
        phone.sync()
        text = f"wmdb dropped {uuid.uuid4()}"
        obs_id = phone.create("observations", local_observation(text))

        lost = phone.sync(drop_push_response=True, expect_ok=False)
        assert lost["ok"] is False
        assert lost["dropped"] is True
        [first] = lost["pushes"]
        assert first["status"] == 200
        assert first["body"]["summary"]["applied"] == 1
        assert phone.record("observations", obs_id)["_status"] == "created"  # still dirty
        observed_at = client.ok(client.get(f"/api/v1/farms/observations/{obs_id}/"))["observed_at"]

        cw.settle()
        again = phone.sync()
        [second] = again["pushes"]
        assert second["idempotency_key"] != first["idempotency_key"]
        [result] = [r for r in second["body"]["results"] if r["id"] == obs_id]
        assert result["status"] == "duplicate", result
        assert phone.record("observations", obs_id)["_status"] == "synced"
        server_copy = client.ok(client.get(f"/api/v1/farms/observations/{obs_id}/"))
        assert server_copy["observed_at"] == observed_at
        listed = client.ok(client.get("/api/v1/farms/observations/", search=text))
        assert [row["id"] for row in listed["results"]] == [obs_id]


def test_i_push_answers_a_cursor(cw: ClientWorld) -> None:
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    with device(client, name="agronomist-push-cursor") as phone:
        phone.sync()
        sent = phone.status()["cursor"]
        assert sent
        phone.create("observations", local_observation(f"cursor {uuid.uuid4()}"))
        [push] = phone.sync()["pushes"]
        assert push["body"]["cursor"], push["body"]


def test_expected_device_shapes_the_wire_types(cw: ClientWorld) -> None:
    """The helper itself: the native pull converted to the wire contract's types."""
    client = cw.client(cw.a, "agronomist")
    cw.settle()
    expected = expected_device(client, schema_version=2)
    farm = expected["farms"][FARM]
    assert isinstance(farm["created_at"], int | float)
    assert farm["created_at"] > 0
    assert isinstance(expected["fields"][FIELD]["boundary"], str)
    assert json.loads(expected["fields"][FIELD]["boundary"])["type"] == "Polygon"
    assert isinstance(farm["timezone"], str)
    assert expected["harvests"]
