"""The audit trail: who read or changed what, from where, and whether they were allowed to.

Rows are append-only. The ORM refuses updates and deletes here, and a trigger in the database
(migration 0001) refuses them for every other path: raw SQL, admin actions, TRUNCATE.
"""

from __future__ import annotations

from typing import Any, NoReturn

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from apikit.ids import new_id

AUDIT_EVENT_UPDATE_FORBIDDEN = "Audit events are append-only: an existing event cannot be changed."
AUDIT_EVENT_DELETE_FORBIDDEN = "Audit events are append-only: events cannot be deleted."


class AuditEventImmutableError(Exception):
    """An attempt to change or delete an audit event through the ORM."""


class AuditEventQuerySet(models.QuerySet[Any]):
    """Reads and inserts only. ``update_or_create`` goes through ``save`` and is refused there;
    ``bulk_create(update_conflicts=True)`` is refused by the database trigger."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise AuditEventImmutableError(AUDIT_EVENT_UPDATE_FORBIDDEN)

    def delete(self) -> NoReturn:
        raise AuditEventImmutableError(AUDIT_EVENT_DELETE_FORBIDDEN)

    def bulk_update(self, objs: Any, fields: Any, batch_size: int | None = None) -> NoReturn:
        raise AuditEventImmutableError(AUDIT_EVENT_UPDATE_FORBIDDEN)


class AuditEventBase(models.Model):
    """The columns and the append-only rules of an audit trail: each tenant schema's
    (``AuditEvent``) and the public schema's (``audit.public``: the operators' host)."""

    class Action(models.TextChoices):
        READ = "read", "Read"
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        DELETE = "delete", "Delete"
        EXPORT = "export", "Export"
        LOGIN = "login", "Login"
        LOGIN_FAILED = "login_failed", "Login failed"
        PERMISSION_CHANGE = "permission_change", "Permission change"

    # UUIDv7: time-ordered, so "-id" is a unique, stable newest-first order for cursors.
    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    occurred_at = models.DateTimeField(default=timezone.now, db_default=Now(), db_index=True)
    # No foreign key: the trail must outlive users and never block deleting one. Null for
    # anonymous requests, failed logins and system jobs.
    actor_id = models.UUIDField(null=True, blank=True, db_index=True)
    actor_email = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    # False records a denied attempt.
    allowed = models.BooleanField(default=True)
    # "<app_label>.<model_name>", e.g. "clinical.patient".
    object_type = models.CharField(max_length=100, blank=True)
    # One row per list response holds the page's ids; detail reads and writes hold one.
    object_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    # Names of the fields a write changed, never their values (the trail holds no PHI).
    changed_fields = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=400, blank=True)
    request_id = models.CharField(max_length=128, blank=True)
    trace_id = models.CharField(max_length=64, blank=True)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["-id"]

    def __str__(self) -> str:
        who = self.actor_email or "anonymous"
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {who} {self.action} {self.object_type}"

    def save(self, **kwargs: Any) -> None:
        """Insert only: saving a row that already exists raises instead of updating it."""
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            raise AuditEventImmutableError(AUDIT_EVENT_UPDATE_FORBIDDEN)
        kwargs["force_insert"] = True
        super().save(**kwargs)

    def delete(self, using: Any = None, keep_parents: bool = False) -> NoReturn:
        raise AuditEventImmutableError(AUDIT_EVENT_DELETE_FORBIDDEN)


class AuditEvent(AuditEventBase):
    """A tenant's trail, in its own schema."""

    class Meta(AuditEventBase.Meta):
        indexes = [
            # "Who touched patient X": object_ids @> ARRAY[X]
            GinIndex(fields=["object_ids"], name="audit_event_object_ids_gin"),
            models.Index(fields=["object_type", "-id"], name="audit_event_type_id"),
        ]
