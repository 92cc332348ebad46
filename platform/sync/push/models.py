"""Push-side state in each tenant schema: the per-field change history ``field_merge`` needs.

``SyncFieldChange`` is written only by the ``sync_field_history`` statement-level triggers on
the field-merge tables (migration 0003_push_field_history): every UPDATE, whatever path it takes
(API service, admin, push, raw SQL), records which columns each row changed and the row's new
version, so a push with a stale ``base_version`` can tell whether the fields it changed were also
changed on the server since that base.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Now

# Tables whose pushes merge non-overlapping field changes (ConflictPolicy.FIELD_MERGE).
FIELD_HISTORY_TABLES = ("farms_farm", "farms_field", "farms_planting")


class SyncFieldChange(models.Model):
    id = models.BigAutoField(primary_key=True)
    tbl = models.TextField()
    row_id = models.UUIDField()
    # The row's version after the change.
    version = models.PositiveIntegerField()
    # Database column names whose value changed (bookkeeping columns excluded).
    fields = ArrayField(models.TextField())
    changed_at = models.DateTimeField(db_default=Now())

    class Meta:
        app_label = "sync"
        db_table = "sync_field_change"
        indexes = [
            models.Index(fields=["tbl", "row_id", "version"], name="sync_field_change_row"),
            models.Index(fields=["changed_at"], name="sync_field_change_age"),
        ]

    def __str__(self) -> str:
        return f"{self.tbl}:{self.row_id} v{self.version} {','.join(self.fields)}"
