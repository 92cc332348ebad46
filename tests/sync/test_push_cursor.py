"""The cursor a push answers with: it covers the pushed rows only when nothing else changed since
the client's last pull cursor, so adopting it never skips another writer's change. Committed
data (the ``live`` tenant): the watermark only passes committed transactions."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import tenant_context

from farms.models import Field
from tests.farms.conftest import FIELD1
from tests.sync.conftest import SyncWorld, pull, pull_all
from tests.sync.test_push import observation, push

pytestmark = pytest.mark.usefixtures("live_db")


def _observation_ids(body: dict[str, Any]) -> set[str]:
    return {row["id"] for row in body["changes"].get("observations", {}).get("upserted", [])}


def test_with_nothing_else_changed_the_cursor_covers_the_pushed_rows(live: SyncWorld) -> None:
    client = live.farms.agent_client()
    *_, since, _ = pull_all(client)
    row = observation(text="own reading")
    body = push(client, {"observations": [row]}, cursor=since).json()
    assert body["cursor"] != since
    after = pull(client, cursor=body["cursor"])
    assert row["id"] not in _observation_ids(after)  # not downloaded again


def test_after_another_writers_change_the_clients_own_cursor_comes_back(live: SyncWorld) -> None:
    client = live.farms.agent_client()
    *_, since, _ = pull_all(client)
    with tenant_context(live.world.tenant):  # the office renames the field meanwhile (committed)
        Field.objects.filter(pk=FIELD1).update(name="Renamed by the office")
    row = observation(text="reading during the rename")
    body = push(client, {"observations": [row]}, cursor=since).json()
    assert body["cursor"] == since
    upserted, *_ = pull_all(client, cursor=body["cursor"])
    assert upserted["fields"][str(FIELD1)]["name"] == "Renamed by the office"
    assert row["id"] in upserted["observations"]


def test_without_a_cursor_none_is_claimed_and_a_bad_one_is_refused(live: SyncWorld) -> None:
    client = live.farms.agent_client()
    assert push(client, {"observations": [observation()]}).json()["cursor"] is None
    refused = push(client, {"observations": [observation()]}, cursor="not-a-cursor", status=400)
    assert refused.json()["error"]["code"] == "cursor_invalid"
    wrong_type = push(client, {"observations": [observation()]}, cursor=42, status=400)
    assert wrong_type.json()["error"]["code"] == "malformed_push"
