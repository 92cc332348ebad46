"""Base model for tenant data, and the idempotency-key store."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models

from apikit.ids import new_id


class ActiveQuerySet(models.QuerySet[Any]):
    def active(self) -> ActiveQuerySet:
        return self.filter(archived_at__isnull=True)


class ActiveManager(models.Manager[Any]):
    """The default manager: archived (soft-deleted) rows are hidden unless asked for.

    The filtered base queryset is built once per model and database and copied for each use:
    resolving ``archived_at__isnull`` takes ~0.1 ms, a copy a tenth of that, and every request
    starts from this manager. The prototype is never evaluated, so it holds no rows.
    """

    def get_queryset(self) -> ActiveQuerySet:
        key = (self.model, self._db)
        prototypes: dict[tuple[Any, str | None], ActiveQuerySet] = self.__dict__.setdefault(
            "_prototypes", {}
        )
        prototype = prototypes.get(key)
        if prototype is None:
            prototype = prototypes[key] = ActiveQuerySet(self.model, using=self._db).active()
        return prototype.all()


class TenantModel(models.Model):
    """UUIDv7 key, timestamps, who created and last changed the row, an integer ``version``
    bumped atomically on every write (optimistic locking, ETags) and soft delete.

    ``created_by`` / ``updated_by`` are set by services from the request, never from a body.
    ``objects`` hides archived rows; ``all_objects`` sees everything.
    """

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    version = models.PositiveIntegerField(default=1, editable=False)
    archived_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects: ClassVar[ActiveManager] = ActiveManager()
    all_objects: ClassVar[models.Manager[Any]] = models.Manager()

    class Meta:
        abstract = True
        # Related-object access and admin lookups must still reach archived rows.
        base_manager_name = "all_objects"

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None


def server_started() -> models.Func:
    """``pg_postmaster_start_time()``: when the PostgreSQL server answering the query started."""
    return models.Func(function="pg_postmaster_start_time", output_field=models.DateTimeField())


class IdempotencyRecord(models.Model):
    """One POST per (user, Idempotency-Key): its request fingerprint and, once done, its response.

    Kept 24 hours (``idempotency_records_purge``).
    """

    class State(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"

    user_id = models.UUIDField()
    key = models.CharField(max_length=255)
    request_fingerprint = models.CharField(max_length=64)
    state = models.CharField(max_length=12, choices=State.choices, default=State.IN_PROGRESS)
    # Both from the database's clock (apikit.idempotency): until when the claim holds, and the
    # start of the PostgreSQL server it was made on (a claim from another server is dead).
    locked_until = models.DateTimeField()
    server_started_at = models.DateTimeField(db_default=server_started())
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.BinaryField(null=True)
    response_headers = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user_id", "key"], name="apikit_idempotency_user_key"),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.state})"
