"""clinical/reminders/: the SMS reminder outbox, read-only, for tenant_admin; the reminders
shown in an appointment's detail; the tenant's reminder settings (GET/PUT, tenant_admin) and a
preview of a template rendered with made-up data."""

from __future__ import annotations

from typing import Any, ClassVar

import django_filters
from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseNotModified
from django.utils import timezone
from django.utils.formats import get_format
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit import conditional
from apikit.filters import FilterSetBackend
from apikit.pagination import CursorPagination
from apikit.permissions import TenantMember
from apikit.policy import sees_everything
from apikit.viewsets import ListMixin, RetrieveMixin, TenantScopedViewSet
from clinical.api.serializers import AppointmentOutput, utc
from clinical.models import Appointment, ReminderMessage, ReminderSettings, ReminderState
from clinical.reminders import selectors, services
from clinical.reminders.rules import (
    SAMPLE_KIND,
    preview_render,
    settings_problems,
)


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


# --- settings ----------------------------------------------------------------------------------


class SettingsAdminOnly(BasePermission):
    """For the preview, which is no action of the settings viewset: the role matrix's right to
    change the settings (apikit.policy, tenant_admin only)."""

    message = "Only the organisation's administrators can see or change the reminder settings."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user.has_perm("clinical.change_remindersettings"))


def _rule(name: str, value: Any) -> Any:
    """One field through ``rules.settings_problems``, the rule set the admin form calls too."""
    problems = settings_problems({name: value})
    if problems:
        raise serializers.ValidationError(problems[name])
    return value


# The admin's time formats (HH:MM[:SS[.ffffff]]): DRF's ISO 8601 parsing would silently drop a
# UTC offset, and quiet hours are wall-clock times of each facility's own zone.
_TIME_FORMATS = list(get_format("TIME_INPUT_FORMATS"))


@extend_schema_field(
    {"type": "string", "pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:00)?$", "example": "21:00"}
)
class WallClockTimeField(serializers.TimeField):
    """A facility's local wall-clock time as ``HH:MM`` (quiet hours are minutes, never seconds):
    the document says so with a pattern, since OpenAPI's ``format: time`` means RFC 3339's
    ``HH:MM:SS`` with an offset."""


class ReminderSettingsInput(serializers.Serializer[Any]):
    """The whole settings (PUT). Null or empty values reach the rules, which name the problem
    exactly as the admin form does."""

    enabled = serializers.BooleanField()
    kinds = serializers.JSONField(
        allow_null=True,
        help_text='[{"kind": "<name, 1..32 chars>", "minutes_before": <1..43200>}, ...], names '
        "and offsets unique; [] sends none.",
    )
    template = serializers.CharField(
        allow_blank=True,
        allow_null=True,
        help_text="str.format placeholders: patient_given_name, patient_family_name, "
        "facility_name, local_date, local_time, kind; at most 1600 characters.",
    )
    quiet_start = WallClockTimeField(input_formats=_TIME_FORMATS, format="%H:%M")
    quiet_end = WallClockTimeField(input_formats=_TIME_FORMATS, format="%H:%M")
    version = serializers.IntegerField(
        required=False, min_value=0, help_text="The version you read (or send If-Match)."
    )

    def validate_kinds(self, value: Any) -> Any:
        return _rule("kinds", value)

    def validate_template(self, value: Any) -> Any:
        return _rule("template", value)

    def validate_quiet_start(self, value: Any) -> Any:
        return _rule("quiet_start", value)

    def validate_quiet_end(self, value: Any) -> Any:
        return _rule("quiet_end", value)


class ReminderKindOutput(serializers.Serializer[Any]):
    kind = serializers.CharField()
    minutes_before = serializers.IntegerField()


class ReminderSettingsOutput(serializers.Serializer[Any]):
    """``id`` and ``updated_at`` are null and ``version`` 0 while the defaults were never saved."""

    id = serializers.UUIDField(allow_null=True)
    enabled = serializers.BooleanField()
    kinds = ReminderKindOutput(many=True)
    template = serializers.CharField()
    quiet_start = WallClockTimeField(format="%H:%M")
    quiet_end = WallClockTimeField(format="%H:%M")
    version = serializers.IntegerField()
    updated_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, instance: ReminderSettings) -> dict[str, Any]:
        saved = instance.version != selectors.SETTINGS_NEVER_SAVED
        return {
            "id": str(instance.pk) if saved else None,
            "enabled": instance.enabled,
            "kinds": instance.kinds,
            "template": instance.template,
            "quiet_start": instance.quiet_start.strftime("%H:%M"),
            "quiet_end": instance.quiet_end.strftime("%H:%M"),
            "version": instance.version,
            "updated_at": utc(instance.updated_at) if saved else None,
        }


class ReminderSettingsViewSet(TenantScopedViewSet):
    """The tenant's reminder settings: one resource, no id in the path. GET answers the defaults
    (version 0) until the first PUT; PUT replaces them all, with ``If-Match`` (412) or a body
    ``version`` (409) against lost updates; every PUT is audited with the changed field names."""

    model = ReminderSettings
    # The role matrix (apikit.policy) gives these to tenant_admin only; the Django admin checks
    # the same two permissions.
    required_permissions = {
        "retrieve": "clinical.view_remindersettings",
        "update": "clinical.change_remindersettings",
    }
    audit_reads: ClassVar[bool | None] = False

    def scoped_queryset(self) -> QuerySet[ReminderSettings]:
        return ReminderSettings.objects.all()

    @extend_schema(responses=ReminderSettingsOutput)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        current = selectors.reminder_settings_get()
        if conditional.is_not_modified(request, current):
            not_modified = HttpResponseNotModified()
            not_modified["ETag"] = conditional.etag_for(current)
            return not_modified
        return self.detail_response(current, ReminderSettingsOutput)

    @extend_schema(request=ReminderSettingsInput, responses=ReminderSettingsOutput)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = ReminderSettingsInput(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        saved = services.reminder_settings_update(
            enabled=data["enabled"],
            kinds=data["kinds"],
            template=data["template"],
            quiet_start=data["quiet_start"],
            quiet_end=data["quiet_end"],
            expected_version=self.expected_version(selectors.reminder_settings_get()),
            actor=request.user,
        )
        self.audit_changed_fields = saved.changed_fields
        return self.detail_response(saved.settings, ReminderSettingsOutput)


class ReminderPreviewInput(serializers.Serializer[Any]):
    template = serializers.CharField(allow_blank=True, allow_null=True)
    kind = serializers.CharField(
        required=False, max_length=32, help_text=f'Shown for {{kind}}; default "{SAMPLE_KIND}".'
    )

    def validate_template(self, value: Any) -> Any:
        return _rule("template", value)


class ReminderPreviewOutput(serializers.Serializer[Any]):
    text = serializers.CharField()
    characters = serializers.IntegerField()
    truncated = serializers.BooleanField(help_text="Cut at 1600 characters, as a send would be.")


class ReminderPreviewView(APIView):
    """A template rendered for a made-up patient (never a real one's data), for tenant_admin.

    An APIView, not the base viewset: a preview writes nothing, and the base would audit every
    successful POST as a create. Authentication, throttles and the error envelope are the
    project's defaults; the permissions are the base viewset's tenant membership and the
    settings' admin-only role check."""

    permission_classes = (IsAuthenticated, TenantMember, SettingsAdminOnly)

    @extend_schema(request=ReminderPreviewInput, responses=ReminderPreviewOutput)
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = ReminderPreviewInput(data=request.data)
        body.is_valid(raise_exception=True)
        preview = preview_render(
            template=body.validated_data["template"],
            kind=body.validated_data.get("kind") or SAMPLE_KIND,
            now=timezone.now(),
        )
        return Response(
            ReminderPreviewOutput(
                {
                    "text": preview.text,
                    "characters": preview.characters,
                    "truncated": preview.truncated,
                }
            ).data
        )
