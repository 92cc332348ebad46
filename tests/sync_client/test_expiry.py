"""A cursor that expired, with the real WatermelonDB client (docs/sync.md, section 8).

Two devices sync, go offline and change things locally; meanwhile the server deletes rows.
Compaction then expires those tombstones (backdated past the retention window, as
tests/sync/test_compaction.py does), which moves ``min_retained_txid`` past both devices'
cursors: their next pull answers 410 ``cursor_expired`` (``synchronize()`` fails in its pull,
before any push). Following the guide:

- the phone pushes first (its edits and creations; a push needs no cursor: WatermelonDB always
  pulls before it pushes, so the push-first sync pulls nothing locally, ``push_only``), removes
  the stored cursor and syncs: one ``replacement`` response drops every row deleted while it was
  away;
- the tablet resets without pushing: the replacement keeps its unpushed creation (pushed in the
  same ``synchronize()``) and drops its edit of a row deleted meanwhile.

Both then equal the server. This module raises the tenant's ``min_retained_txid``: devices of
other tests are opened after it runs (no device outlives its test)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from sync.models import SyncChange
from sync.services import change_log_compact
from tests.sync.wmdb import assert_device_matches_server, device
from tests.sync_client.conftest import ClientWorld
from tests.sync_client.helpers import (
    ids,
    local_observation,
    observation_create,
    planting_create,
    pushed_tables,
    results_by_id,
    tag,
)


def test_an_expired_cursor_push_first_reset_and_sync_again(cw: ClientWorld) -> None:
    rest = cw.client(cw.a, "agronomist", device_name=None)
    edited = planting_create(rest)  # edited on the phone while away
    deleted_planting = planting_create(rest)  # deleted on the server, edited on the tablet
    deleted_observations = [observation_create(rest) for _ in range(2)]
    phone_client = cw.client(cw.a, "agronomist", device_name="expiry phone")
    tablet_client = cw.client(cw.a, "agronomist", device_name="expiry tablet")
    cw.settle()
    with (
        device(phone_client, name="expiry-phone") as phone,
        device(tablet_client, name="expiry-tablet") as tablet,
    ):
        phone.sync()
        tablet.sync()
        gone = {deleted_planting, *deleted_observations}
        for handheld in (phone, tablet):
            dump = handheld.dump()
            assert gone <= ids(dump, "plantings") | ids(dump, "observations")

        # Offline work on both devices.
        season = f"edited while away {tag()}"
        phone.update("plantings", edited, {"season": season})
        phone_created = phone.create("observations", local_observation(f"phone {tag()}"))
        tablet_created = tablet.create("observations", local_observation(f"tablet {tag()}"))
        tablet.update("plantings", deleted_planting, {"season": f"lost {tag()}"})
        # Meanwhile the server deletes rows, and the tombstones outlive the retention window.
        rest.ok(rest.delete(f"/api/v1/farms/plantings/{deleted_planting}/"), 204)
        for observation in deleted_observations:
            rest.ok(rest.delete(f"/api/v1/farms/observations/{observation}/"), 204)
        cw.settle()
        with cw.schema(cw.a):
            backdated = SyncChange.objects.filter(row_id__in=gone, op="D").update(
                changed_at=timezone.now() - dt.timedelta(days=400)
            )
            assert backdated == len(gone)
            result = change_log_compact(now=timezone.now())
        assert result.expired >= len(gone)

        # The phone: 410 in the pull, nothing pushed.
        expired = phone.sync(expect_ok=False)
        assert expired["status"] == 410, expired
        assert [pull["status"] for pull in expired["pulls"]] == [410]
        assert expired["error"]["error"]["code"] == "cursor_expired"
        assert expired["pushes"] == []
        assert phone.status()["has_unsynced_changes"] is True
        # The guide: push first...
        pushed = phone.sync(push_only=True)
        assert pushed["pulls"] == []
        results = results_by_id(pushed)
        assert results[edited]["status"] == "applied", results[edited]
        assert results[phone_created]["status"] == "applied", results[phone_created]
        assert phone.status()["has_unsynced_changes"] is False
        # ...then forget the cursor and sync again: everything, in one replacement response.
        phone.reset_cursor()
        reply = phone.sync()
        [pull] = reply["pulls"]
        assert (pull["sent_cursor"], pull["experimentalStrategy"]) == (False, "replacement")
        dump = phone.dump()
        assert gone.isdisjoint(ids(dump, "plantings") | ids(dump, "observations"))
        cw.settle()
        phone.sync()  # the pushed rows come back with the server's values
        dump = assert_device_matches_server(phone, phone_client)
        assert phone.record("plantings", edited)["season"] == season
        assert phone_created in ids(dump, "observations")

        # The tablet resets without pushing first.
        expired = tablet.sync(expect_ok=False)
        assert (expired["status"], expired["pushes"]) == (410, [])
        assert expired["error"]["error"]["code"] == "cursor_expired"
        tablet.reset_cursor()
        reply = tablet.sync()
        assert reply["pulls"][0]["experimentalStrategy"] == "replacement"
        # The replacement kept the unpushed creation, which the same synchronize() pushed; the
        # edit of the deleted planting went with the row.
        assert pushed_tables(reply) == {"observations"}
        assert results_by_id(reply)[tablet_created]["status"] == "applied"
        assert rest.get(f"/api/v1/farms/plantings/{deleted_planting}/").status_code == 404
        cw.settle()
        tablet.sync()
        dump = assert_device_matches_server(tablet, tablet_client)
        assert tablet_created in ids(dump, "observations")
        assert gone.isdisjoint(ids(dump, "plantings") | ids(dump, "observations"))
