"""Compaction: duplicates collapse (scopes merged), old tombstones expire, ``min_retained_txid``
rises and older cursors answer 410; a full pull still finds every row."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from farms.models import Field, Observation
from sync.cursor import cursor_decode, cursor_encode
from sync.models import SyncState
from sync.services import change_log_compact
from sync.tasks import change_log_compact_all
from tests.farms.conftest import F1, F2, FIELD1, OBS1
from tests.sync.conftest import SyncWorld, error, login, pull


def _entries(row_id: Any) -> list[tuple[str, list[str]]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT op, scope_ids::text[] FROM sync_change WHERE row_id = %s ORDER BY seq",
            [row_id],
        )
        return [tuple(row) for row in cursor.fetchall()]


def test_compaction_collapses_expires_and_moves_the_retention_mark(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    old_cursor = pull(client, tables="observations")["cursor"]
    with tenant_context(sync_alpha.world.tenant):
        Field.objects.filter(pk=FIELD1).update(farm_id=F2)  # a move: scopes F1 and F2
        Field.objects.filter(pk=FIELD1).update(name="renamed")  # a later change, scope F2
        Observation.objects.filter(pk=OBS1).update(archived_at=timezone.now())  # tombstone
        with connection.cursor() as cursor:  # the tombstone is 100 days old
            cursor.execute(
                "UPDATE sync_change SET changed_at = now() - interval '100 days' "
                "WHERE row_id = %s AND op = 'D'",
                [OBS1],
            )
        result = change_log_compact(now=timezone.now())
        assert result.collapsed > 0
        assert result.expired == 1
        entries = _entries(FIELD1)
        assert len(entries) == 1  # only the latest entry is kept...
        assert sorted(entries[0][1]) == sorted([str(F1), str(F2)])  # ...with both scopes
        assert _entries(OBS1) == []
        state = SyncState.objects.get(pk=1)
        assert state.min_retained_txid == result.min_retained_txid > 0
        # (In one test transaction the cursor sits just past the tombstone; a device's cursor
        # from before the tombstone's transaction is what expires.)
        decoded = cursor_decode(old_cursor)
        older = cursor_encode(replace(decoded, lo=state.min_retained_txid - 1))
    assert error(client.get("/api/v1/sync/pull/", {"cursor": older}), 410)["code"] == (
        "cursor_expired"
    )
    # A full pull still has every live row (their latest entries are kept).
    fields = pull(client, tables="fields")["changes"]["fields"]["upserted"]
    assert {row["id"] for row in fields} >= {str(FIELD1)}


def test_retention_is_per_tenant_and_young_tombstones_stay(sync_alpha: SyncWorld) -> None:
    with tenant_context(sync_alpha.world.tenant):
        SyncState.objects.update_or_create(pk=1, defaults={"retention_days": 200})
        Observation.objects.filter(pk=OBS1).update(archived_at=timezone.now())
        result = change_log_compact(now=timezone.now() + dt.timedelta(days=100))
        assert result.expired == 0
        assert ("D", [str(F1)]) in _entries(OBS1)


def test_the_beat_task_visits_every_tenant(sync_alpha: SyncWorld, sync_beta: SyncWorld) -> None:
    assert change_log_compact_all() >= 0
    for world in (sync_alpha, sync_beta):
        with tenant_context(world.world.tenant):
            assert SyncState.objects.get(pk=1).compacted_at is not None


def _field_history(row_id: Any) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM sync_field_change WHERE row_id = %s", [row_id])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def test_per_field_history_expires_with_the_window(sync_alpha: SyncWorld) -> None:
    with tenant_context(sync_alpha.world.tenant):
        Field.objects.filter(pk=FIELD1).update(name="renamed once")
        recorded = _field_history(FIELD1)
        assert recorded > 0  # the trigger kept which columns changed, for field merges
        young = change_log_compact(now=timezone.now())
        assert young.field_history_expired == 0
        assert _field_history(FIELD1) == recorded
        old = change_log_compact(now=timezone.now() + dt.timedelta(days=400))
        assert old.field_history_expired >= recorded
        assert _field_history(FIELD1) == 0
