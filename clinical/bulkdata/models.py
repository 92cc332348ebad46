"""A FHIR Bulk Data export job (docs/fhir.md, "Bulk Data export").

One row per kick-off, in the tenant's schema (so a status or file URL of another tenant is simply
not there: 404). The model lives in the ``clinical`` app (imported by clinical/models.py), so a
farm tenant's kind hides it with the rest of the clinical domain.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from apikit.ids import new_id


class BulkExportLevel(models.TextChoices):
    SYSTEM = "system", "System ([base]/$export)"
    PATIENT = "patient", "Patient ([base]/Patient/$export)"


class BulkExportStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class BulkExport(models.Model):
    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    level = models.CharField(max_length=16, choices=BulkExportLevel.choices)
    # The kick-off URL as the client sent it (the manifest's ``request``).
    request_url = models.TextField()
    resource_types = ArrayField(models.CharField(max_length=32))
    since = models.DateTimeField(null=True, blank=True)
    output_format = models.CharField(max_length=64)
    status = models.CharField(
        max_length=16, choices=BulkExportStatus.choices, default=BulkExportStatus.ACCEPTED
    )
    # True while accepted or running: the partial unique constraint below allows one such job per
    # tenant (a second kick-off answers 429), decided by the database, not by a check-then-insert.
    active = models.BooleanField(default=True)
    # The kick-off request's who/where (apikit.request_context), for the audit events the worker
    # records in the requester's name.
    audit_context = models.JSONField(default=dict)
    transaction_time = models.DateTimeField(null=True, blank=True)
    # [{"type": "Patient", "path": "<storage name>", "count": 12}, ...]
    output = models.JSONField(default=list)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_polled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        # apikit.policy.BULK_EXPORT_SYSTEM: the system-level export of everything.
        permissions = [("export_system", "Can export every resource of the organisation")]
        constraints = [
            models.UniqueConstraint(
                fields=["active"], condition=Q(active=True), name="clinical_bulkexport_one_active"
            ),
        ]
        indexes = [
            models.Index(fields=["expires_at"], name="clinical_bulkexport_expires"),
        ]

    def __str__(self) -> str:
        return f"{self.level} export {self.id} ({self.status})"
