"""Sync state in each tenant schema: registered devices, the trigger-written change log and the
compaction bookkeeping.

Contract for the push side (part B):
- ``Device``: a registered field device of one user. ``sync.selectors.request_device(request)``
  returns the request's device (from the access token's ``did`` claim) or None for a token
  without one; a revoked device never reaches a view (authentication answers 403
  ``device_revoked``).
- ``SyncChange``: read-only mirror of the ``sync_change`` table (created by migration 0002 with
  its triggers, not by the ORM). Never write it from Python: the triggers on every synced table
  do, in the writing transaction, whatever path the write takes (ORM, ``update()``, ``bulk_*``,
  raw SQL, ``COPY``...).
- Part A's migrations: 0001_initial, 0002_change_log. Push models (part B) may live in
  ``sync/push/models.py`` imported at the end of this module, with their own migration depending
  on the leaf migration at that time.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models

from apikit.ids import new_id


class Device(models.Model):
    """A field device (phone, tablet) registered by a user. Tokens issued for it carry ``did``;
    revoking it (lost phone) makes every such token answer 403 ``device_revoked``."""

    class Platform(models.TextChoices):
        ANDROID = "android", "Android"
        IOS = "ios", "iOS"
        WEB = "web", "Web"
        OTHER = "other", "Other"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sync_devices"
    )
    name = models.CharField(max_length=100)
    platform = models.CharField(max_length=10, choices=Platform.choices)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="sync_device_user")]

    def __str__(self) -> str:
        return f"{self.name} ({self.platform})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class SyncChange(models.Model):
    """One change of one synced row (read-only mirror of ``sync_change``; see module docstring).

    ``txid`` is the writing transaction's id (``xid8``, read as text here); ``scope_ids`` the
    containers (farm / facility ids; the nil UUID for tenant-wide rows) the row belonged to
    before and after the change; ``op`` is ``U`` (insert / update) or ``D`` (delete, or archived).
    """

    seq = models.BigAutoField(primary_key=True)
    txid = models.TextField()
    tbl = models.TextField()
    row_id = models.UUIDField()
    op = models.CharField(max_length=1)
    scope_ids = ArrayField(models.UUIDField())
    changed_at = models.DateTimeField()

    class Meta:
        managed = False
        db_table = "sync_change"

    def __str__(self) -> str:
        return f"{self.tbl}:{self.row_id} {self.op}"


class SyncState(models.Model):
    """One row per tenant schema (id 1): compaction bookkeeping and the tenant's retention."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    # Cursors whose low watermark is below this answer 410 cursor_expired (tombstones older than
    # it were compacted away). 0: nothing compacted yet.
    min_retained_txid = models.BigIntegerField(default=0)
    # Days tombstones are kept; None: settings.SYNC_CHANGE_LOG_RETENTION_DAYS.
    retention_days = models.PositiveIntegerField(null=True, blank=True)
    compacted_at = models.DateTimeField(null=True, blank=True)
    last_compaction_removed = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(id=1), name="sync_state_single")]

    def __str__(self) -> str:
        return f"sync state (min retained txid {self.min_retained_txid})"


class ScopeSnapshot(models.Model):
    """What one scope digest meant: the tables, the fields each carried and the containers whose
    rows it covered. A pull under a new scope reads the device's previous one here to send the
    difference (rows of gained containers, ids of lost ones) as ordinary pageable changes.
    Written once per digest (content-addressed), when a cursor under it is first issued."""

    digest = models.CharField(primary_key=True, max_length=64)
    role = models.CharField(max_length=32)
    # {wire table: [wire fields sent]}.
    tables = models.JSONField()
    # {container model label: {"all": bool, "ids": [uuid]}}: scoped users see ``ids``; with
    # ``all`` every container but ``ids`` (the archived ones).
    containers = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "sync_scope_snapshot"

    def __str__(self) -> str:
        return f"sync scope {self.digest}"


# Push-side models (part B) live with the push package; imported here so Django registers them.
from sync.push.models import SyncFieldChange  # noqa: E402, F401
