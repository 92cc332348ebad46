"""clinical/reminders/: the SMS reminder outbox, read-only, for tenant_admin; and the reminders
shown in an appointment's detail."""

from __future__ import annotations

from typing import Any, ClassVar

import django_filters
from django.db.models import QuerySet
from rest_framework import serializers
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from apikit.filters import FilterSetBackend
from apikit.pagination import CursorPagination
from apikit.policy import sees_everything
from apikit.viewsets import ListMixin, RetrieveMixin, TenantScopedViewSet
from clinical.api.serializers import AppointmentOutput, utc
from clinical.models import Appointment, ReminderMessage, ReminderState
from clinical.reminders import selectors


class TenantAdminOnly(BasePermission):
    message = "Only the organisation's administrators can see the reminder outbox."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return sees_everything(request.user)


def reminder_brief(row: ReminderMessage) -> dict[str, Any]:
    return {
        "id": str(row.pk),
        "kind": row.kind,
        "due_at": utc(row.due_at),
        "send_after": utc(row.send_after),
        "state": row.state,
        "reason": row.reason,
        "attempts": row.attempts,
        "sent_at": utc(row.sent_at) if row.sent_at else None,
        "delivered_at": utc(row.delivered_at) if row.delivered_at else None,
        "provider_status": row.provider_status,
        "error_code": row.error_code,
    }


class ReminderBriefOutput(serializers.Serializer[Any]):
    id = serializers.UUIDField()
    kind = serializers.CharField()
    due_at = serializers.DateTimeField()
    send_after = serializers.DateTimeField()
    state = serializers.ChoiceField(choices=ReminderState.choices)
    reason = serializers.CharField()
    attempts = serializers.IntegerField()
    sent_at = serializers.DateTimeField(allow_null=True)
    delivered_at = serializers.DateTimeField(allow_null=True)
    provider_status = serializers.CharField()
    error_code = serializers.CharField()

    def to_representation(self, instance: ReminderMessage) -> dict[str, Any]:
        return reminder_brief(instance)


class ReminderOutput(ReminderBriefOutput):
    """One outbox row. The message text and number are not shown (PHI stays in the row)."""

    appointment = serializers.UUIDField()
    patient = serializers.UUIDField()
    facility = serializers.UUIDField()
    provider_sid = serializers.CharField()

    def to_representation(self, instance: ReminderMessage) -> dict[str, Any]:
        appointment = instance.appointment
        return {
            **reminder_brief(instance),
            "appointment": str(appointment.pk),
            "patient": str(appointment.patient_id),
            "facility": str(appointment.facility_id),
            "provider_sid": instance.provider_sid,
        }


class AppointmentDetailOutput(AppointmentOutput):
    """The appointment with its reminders (state, reason, delivery), oldest due first."""

    reminders = ReminderBriefOutput(many=True)

    def to_representation(self, instance: Appointment) -> dict[str, Any]:
        data = super().to_representation(instance)
        data["reminders"] = [
            reminder_brief(row)
            for row in selectors.reminders_for_appointment(appointment_id=instance.pk)
        ]
        return data


class ReminderFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=ReminderState.choices)
    kind = django_filters.CharFilter(max_length=32)
    reason = django_filters.CharFilter(max_length=64, label='e.g. "quota", "quiet_hours"')
    appointment = django_filters.UUIDFilter()
    patient = django_filters.UUIDFilter()
    facility = django_filters.UUIDFilter()
    due_after = django_filters.IsoDateTimeFilter(label="Due at or after (ISO 8601)")
    due_before = django_filters.IsoDateTimeFilter(label="Due before (ISO 8601)")

    class Meta:
        model = ReminderMessage
        fields: list[str] = []

    def filter_queryset(self, queryset: QuerySet[ReminderMessage]) -> QuerySet[ReminderMessage]:
        data: dict[str, Any] = self.form.cleaned_data
        return selectors.reminder_filter(
            queryset,
            state=data.get("state") or None,
            kind=data.get("kind") or None,
            reason=data.get("reason") or None,
            appointment_id=data.get("appointment"),
            patient_id=data.get("patient"),
            facility_id=data.get("facility"),
            due_after=data.get("due_after"),
            due_before=data.get("due_before"),
        )


class ReminderViewSet(ListMixin, RetrieveMixin, TenantScopedViewSet):
    """The whole tenant's outbox, newest first: what was sent, deferred (quota, quiet hours),
    skipped (no consent, opted out) or failed, and why."""

    model = ReminderMessage
    serializer_class = ReminderOutput
    list_serializer_class = ReminderOutput
    detail_serializer_class = ReminderOutput
    extra_permission_classes = (TenantAdminOnly,)
    pagination_class = CursorPagination
    cursor_ordering = "-id"
    filter_backends = (FilterSetBackend,)
    filterset_class = ReminderFilter
    audit_reads: ClassVar[bool | None] = False

    def scoped_queryset(self) -> QuerySet[ReminderMessage]:
        return selectors.reminder_list()
