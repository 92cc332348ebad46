"""Query filters for audit/events/. Invalid values are a 400 envelope with the offending fields
(DjangoFilterBackend raises a ValidationError), never silently ignored."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet

from audit import selectors
from audit.models import AuditEvent

BOOLEAN_INVALID = "Use true or false."


class _StrictBooleanField(forms.Field):
    """``true`` / ``false``; anything else is an error (django-filter's own boolean widgets
    silently ignore values they do not recognise)."""

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        if value in ("true", "false"):
            return bool(value == "true")
        raise forms.ValidationError(BOOLEAN_INVALID, code="invalid")


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = _StrictBooleanField


class AuditEventFilter(django_filters.FilterSet):
    """Parses and validates the query; the filtering itself is ``selectors.audit_event_filter``,
    so the API and Python callers cannot drift apart."""

    actor = django_filters.UUIDFilter(field_name="actor_id", label="Actor (user id)")
    action = django_filters.ChoiceFilter(choices=AuditEvent.Action.choices)
    object_type = django_filters.CharFilter(
        field_name="object_type", label='Object type, e.g. "clinical.patient"'
    )
    object_id = django_filters.UUIDFilter(
        field_name="object_ids", label="Events about this object (its id is among object_ids)"
    )
    allowed = StrictBooleanFilter(label="false: denied attempts only")
    occurred_after = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", label="At or after (ISO 8601)"
    )
    occurred_before = django_filters.IsoDateTimeFilter(
        field_name="occurred_at", label="Before (ISO 8601)"
    )

    class Meta:
        model = AuditEvent
        fields: list[str] = []

    def filter_queryset(self, queryset: QuerySet[AuditEvent]) -> QuerySet[AuditEvent]:
        data: dict[str, Any] = self.form.cleaned_data
        return selectors.audit_event_filter(
            queryset,
            actor_id=data.get("actor"),
            action=data.get("action") or None,
            object_type=data.get("object_type") or None,
            object_id=data.get("object_id"),
            allowed=data.get("allowed"),
            occurred_after=data.get("occurred_after"),
            occurred_before=data.get("occurred_before"),
        )
