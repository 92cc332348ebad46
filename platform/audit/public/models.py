"""The public schema's audit trail: what happens on the platform operators' host (logins and
failed logins at its admin). A shared app, so its table exists in public only; tenants keep
theirs in their own schemas (audit.models.AuditEvent). Written through the same service,
``audit.services.audit_event_record``, which picks the trail of the active schema."""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models

from audit.models import AuditEventBase


class PublicAuditEvent(AuditEventBase):
    class Meta(AuditEventBase.Meta):
        db_table = "audit_public_event"
        indexes = [
            GinIndex(fields=["object_ids"], name="audit_public_object_ids_gin"),
            models.Index(fields=["object_type", "-id"], name="audit_public_type_id"),
        ]
