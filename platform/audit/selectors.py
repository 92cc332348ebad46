"""Reads for the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import QuerySet

from audit.models import AuditEvent


def audit_event_filter(
    queryset: QuerySet[AuditEvent],
    *,
    actor_id: uuid.UUID | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: uuid.UUID | None = None,
    allowed: bool | None = None,
    occurred_after: datetime | None = None,
    occurred_before: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Narrow ``queryset`` by the given filters; ``None`` means "any".

    ``object_id`` matches events whose ``object_ids`` contain it ("who read or changed patient
    X"), answered by the GIN index. ``occurred_after`` is inclusive, ``occurred_before`` exclusive.
    """
    if actor_id is not None:
        queryset = queryset.filter(actor_id=actor_id)
    if action is not None:
        queryset = queryset.filter(action=action)
    if object_type is not None:
        queryset = queryset.filter(object_type=object_type)
    if object_id is not None:
        queryset = queryset.filter(object_ids__contains=[object_id])
    if allowed is not None:
        queryset = queryset.filter(allowed=allowed)
    if occurred_after is not None:
        queryset = queryset.filter(occurred_at__gte=occurred_after)
    if occurred_before is not None:
        queryset = queryset.filter(occurred_at__lt=occurred_before)
    return queryset


def audit_event_list(
    *,
    actor_id: uuid.UUID | None = None,
    action: str | None = None,
    object_type: str | None = None,
    object_id: uuid.UUID | None = None,
    allowed: bool | None = None,
    occurred_after: datetime | None = None,
    occurred_before: datetime | None = None,
) -> QuerySet[AuditEvent]:
    """Events of the current tenant (the active schema), newest first, optionally filtered as in
    ``audit_event_filter``."""
    return audit_event_filter(
        AuditEvent.objects.all(),
        actor_id=actor_id,
        action=action,
        object_type=object_type,
        object_id=object_id,
        allowed=allowed,
        occurred_after=occurred_after,
        occurred_before=occurred_before,
    ).order_by("-id")
