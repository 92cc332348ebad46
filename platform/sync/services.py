"""Writes for sync: device registration and revocation, change-log compaction.

The change log itself is written only by database triggers (migration 0002), never from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.authentication import DEVICE_REVOKED_DETAIL
from apikit.access_events import user_access_changed
from apikit.errors import APIError
from sync.models import Device, SyncState
from sync.selectors import devices_changed

DEFAULT_RETENTION_DAYS = 90


def device_register(*, user: Any, name: str, platform: str) -> Device:
    with transaction.atomic():
        return Device.objects.create(user=user, name=name, platform=platform)


def device_revoke(*, device: Device, actor: Any) -> Device:
    """Revoke a device (lost phone): every token carrying its ``did`` answers 403
    ``device_revoked`` from now on, in every process within about a second. Idempotent."""
    with transaction.atomic():
        locked = Device.objects.select_for_update().get(pk=device.pk)
        if locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.revoked_by = actor
            locked.save(update_fields=["revoked_at", "revoked_by"])
            devices_changed()
            # Open WebSockets of the device's user re-check (4403 for this device's tokens).
            user_access_changed(user_id=locked.user_id)
        return locked


def device_seen(*, device_id: str) -> None:
    Device.objects.filter(pk=device_id).update(last_seen_at=timezone.now())


def device_for_token(*, user: Any, device_id: Any) -> Device:
    """The device a new token may name: a registered, unrevoked device of ``user``."""
    from apikit.ids import parse_uuid

    parsed = parse_uuid(device_id)
    device = Device.objects.filter(pk=parsed, user=user).first() if parsed else None
    if device is None:
        raise APIError(
            status=400,
            code="unknown_device",
            detail="device is not a registered device of this account; register it first "
            "(POST /api/v1/sync/devices/).",
        )
    if device.revoked_at is not None:
        raise APIError(status=403, code="device_revoked", detail=DEVICE_REVOKED_DETAIL)
    return device


# --- compaction -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompactionResult:
    collapsed: int
    expired: int
    min_retained_txid: int
    field_history_expired: int = 0


_DUPLICATE_ROWS = """
CREATE TEMP TABLE sync_compaction_dups ON COMMIT DROP AS
SELECT tbl, row_id, max(seq) AS keep
  FROM sync_change
 GROUP BY tbl, row_id
HAVING count(*) > 1
"""

_MERGE_SCOPES = """
UPDATE sync_change c
   SET scope_ids = m.scopes
  FROM (SELECT d.keep, array_agg(DISTINCT s) AS scopes
          FROM sync_compaction_dups d
          JOIN sync_change e ON e.tbl = d.tbl AND e.row_id = d.row_id
          CROSS JOIN LATERAL unnest(e.scope_ids) AS s
         GROUP BY d.keep) m
 WHERE c.seq = m.keep AND c.scope_ids IS DISTINCT FROM m.scopes
"""

_DELETE_DUPLICATES = """
DELETE FROM sync_change c
 USING sync_compaction_dups d
 WHERE c.tbl = d.tbl AND c.row_id = d.row_id AND c.seq < d.keep
"""

_EXPIRE_TOMBSTONES = """
WITH gone AS (
    DELETE FROM sync_change WHERE op = 'D' AND changed_at < %s RETURNING txid
)
SELECT count(*), max(txid)::text::bigint FROM gone
"""

_EXPIRE_FIELD_HISTORY = "DELETE FROM sync_field_change WHERE changed_at < %s"


def change_log_compact(*, now: Any = None) -> CompactionResult:
    """Compact this tenant's change log (run by beat through ``sync.tasks``).

    1. Collapse: per row keep only its latest entry, whose ``scope_ids`` becomes the union of the
       dropped entries' (a row that moved away still reaches the devices that must drop it).
       Dropping superseded entries loses nothing: a pull sends the row's current state anyway.
    2. Expire: delete tombstones (``D`` entries) older than the retention window, and raise
       ``min_retained_txid`` past them: a cursor below it could miss those deletions and gets
       410 ``cursor_expired``. The latest ``U`` entry of every live row is kept, so a full pull
       (no cursor) still finds every row.
    3. Expire the per-field history (``sync_field_change``) past the same window.
    """
    now = now or timezone.now()
    with transaction.atomic():
        state, _ = SyncState.objects.select_for_update().get_or_create(pk=1)
        retention = state.retention_days or int(
            getattr(settings, "SYNC_CHANGE_LOG_RETENTION_DAYS", DEFAULT_RETENTION_DAYS)
        )
        with connection.cursor() as db:
            db.execute("DROP TABLE IF EXISTS pg_temp.sync_compaction_dups")
            db.execute(_DUPLICATE_ROWS)
            db.execute(_MERGE_SCOPES)
            db.execute(_DELETE_DUPLICATES)
            collapsed = db.rowcount
            db.execute(_EXPIRE_TOMBSTONES, [now - timedelta(days=retention)])
            expired, newest_expired = db.fetchone()
            # Per-field history for field-merge pushes: past the window, a push whose base is
            # that old gets a conflict instead of a merge (the history no longer covers it).
            db.execute(_EXPIRE_FIELD_HISTORY, [now - timedelta(days=retention)])
            field_history_expired = db.rowcount
        if newest_expired is not None:
            state.min_retained_txid = max(state.min_retained_txid, int(newest_expired) + 1)
        state.compacted_at = now
        state.last_compaction_removed = collapsed + int(expired)
        state.save()
    return CompactionResult(
        collapsed=collapsed,
        expired=int(expired),
        min_retained_txid=state.min_retained_txid,
        field_history_expired=field_history_expired,
    )
