"""Property: writers whose transactions commit in random order while a device pulls page by page;
the union of what the device pulled equals the final database state (no row skipped, no stale
state left), because the cursor is an xid8 watermark, not a timestamp or a sequence."""

from __future__ import annotations

import random
import threading
import time
import uuid
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from farms.models import Observation
from tests.farms.conftest import FIELD1, FIELD2
from tests.sync.conftest import SyncWorld, login, settle

WRITERS = 4
TRANSACTIONS_PER_WRITER = 6


def _writer(tenant: Any, seed: int, created: list[uuid.UUID], errors: list[BaseException]) -> None:
    rng = random.Random(seed)  # noqa: S311  (reproducible test schedule)
    try:
        with tenant_context(tenant):
            for _ in range(TRANSACTIONS_PER_WRITER):
                with transaction.atomic():
                    new = Observation.objects.create(
                        field_id=rng.choice([FIELD1, FIELD2]),
                        observed_at=timezone.now(),
                        kind="note",
                        text=f"w{seed}",
                    )
                    created.append(new.pk)
                    # Change an earlier row (ours or another writer's) in the same transaction.
                    if len(created) > 1:
                        target = rng.choice(created[:-1])
                        Observation.all_objects.filter(pk=target).update(
                            text=f"w{seed} edit {rng.random():.6f}"
                        )
                    if rng.random() < 0.2:
                        Observation.all_objects.filter(pk=rng.choice(created)).update(
                            archived_at=timezone.now()
                        )
                    # Hold the transaction open a random while: xids commit out of order.
                    time.sleep(rng.uniform(0.0, 0.15))
    except BaseException as exc:
        errors.append(exc)
    finally:
        connection.close()


def _apply(state: dict[str, dict[str, Any]], body: dict[str, Any]) -> None:
    changes = body["changes"]["observations"]
    for row in changes["upserted"]:
        state[row["id"]] = row
    for row_id in changes["deleted"]:
        state.pop(row_id, None)


@pytest.mark.parametrize("seed", [7, 2026])
@pytest.mark.usefixtures("live_db")
def test_pulls_during_out_of_order_commits_converge_on_the_database(
    live: SyncWorld, seed: int
) -> None:
    client = login(live.world)
    state: dict[str, dict[str, Any]] = {}
    cursor = None
    created: list[uuid.UUID] = []
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_writer, args=(live.world.tenant, seed * 100 + n, created, errors))
        for n in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    pages = 0
    while any(thread.is_alive() for thread in threads):
        params = {"tables": "observations", "limit": "3", **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/sync/pull/", params)
        assert response.status_code == 200, response.content
        body = response.json()
        _apply(state, body)
        cursor = body["cursor"]
        pages += 1
        time.sleep(0.01)
    for thread in threads:
        thread.join()
    assert not errors, errors
    settle()
    # Finish the run in progress (its watermark is fixed), then one full run after settling.
    for _ in range(2):
        while True:
            body = client.get(
                "/api/v1/sync/pull/",
                {"tables": "observations", "limit": "3", "cursor": str(cursor)},
            ).json()
            _apply(state, body)
            cursor = body["cursor"]
            if not body["has_more"]:
                break
    with tenant_context(live.world.tenant):
        expected = {
            str(pk): text
            for pk, text in Observation.objects.filter(archived_at__isnull=True).values_list(
                "id", "text"
            )
        }
    assert pages > 5
    assert {row_id: row["text"] for row_id, row in state.items()} == expected
