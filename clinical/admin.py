"""Django admin of the clinical domain, on each tenant's host (tenant admins only).

Changelists fetch every related object they show with list_select_related (constant queries per
page); audit fields are read-only; facilities get guardian's per-object permission screens, whose
grants go through the API's service (``facility_access_change``). Every admin is an
``audit.admin_audit.AuditedModelAdmin``: reads of patients and everything under them, writes,
actions and grants are on the tenant's audit trail."""

from __future__ import annotations

from typing import Any, ClassVar, cast

from django import forms
from django.contrib import admin
from django.db.models import F, Model, QuerySet
from django.http import HttpRequest

from apikit.policy import AccessLevel
from apikit.request_context import request_context
from apikit.rules import RuleError
from audit.admin_audit import AuditedGuardedModelAdmin, AuditedModelAdmin
from clinical import services
from clinical.models import (
    Appointment,
    Facility,
    Patient,
    PatientDocument,
    Prescription,
    PrescriptionItem,
    ReminderMessage,
    ReminderSettings,
)
from clinical.reminders.rules import settings_problems
from clinical.reminders.selectors import SETTINGS_NEVER_SAVED
from clinical.reminders.services import reminder_settings_update
from clinical.rules import phone_is_mobile, phone_normalise

AUDIT_FIELDS = (
    "id",
    "version",
    "created_at",
    "created_by",
    "updated_at",
    "updated_by",
    "archived_at",
)


class StampedAdmin(AuditedModelAdmin):
    """Stamps who changed the row and bumps ``version``, as the API's services do, so ETags and
    optimistic locks held by API clients see admin edits too."""

    readonly_fields: ClassVar[Any] = AUDIT_FIELDS
    show_full_result_count = False  # no second COUNT(*) over the whole table per page

    def has_module_permission(self, request: HttpRequest) -> bool:
        return getattr(request, "tenant", None) is not None and super().has_module_permission(
            request
        )

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        obj.updated_by = request.user
        if change:
            obj.version = F("version") + 1
        else:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        obj.refresh_from_db(fields=["version"])


class PhoneForm(forms.ModelForm):
    def clean_phone(self) -> str:
        try:
            return phone_normalise(phone=self.cleaned_data.get("phone", ""))
        except RuleError as error:
            raise forms.ValidationError(error.message) from None


@admin.register(Facility)
class FacilityAdmin(AuditedGuardedModelAdmin, StampedAdmin):  # type: ignore[misc]
    form = PhoneForm
    list_display = ("name", "code", "timezone", "phone", "archived_at")
    list_filter = ("timezone",)
    search_fields = ("name", "code")

    def container_access_change(
        self, *, request: HttpRequest, container: Model, user: Any, level: AccessLevel, grant: bool
    ) -> None:
        services.facility_access_change(
            facility=cast(Facility, container),
            user=user,
            level=level,
            grant=grant,
            context=request_context(request),
        )


@admin.register(Patient)
class PatientAdmin(StampedAdmin):
    form = PhoneForm
    list_display = (
        "mrn",
        "family_name",
        "given_name",
        "birth_date",
        "sex",
        "facility",
        "assigned_clinician",
        "visit_count",
    )
    list_select_related = ("facility", "assigned_clinician")
    list_filter = ("facility", "sex", "sms_opt_in")
    search_fields = ("mrn", "family_name", "given_name", "phone")
    readonly_fields = (*AUDIT_FIELDS, "visit_count")
    raw_id_fields = ("assigned_clinician",)
    list_per_page = 100
    exclude = ("search_vector",)

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # The phone's stored MOBILE verdict, as the services and the sync push set it.
        obj.phone_is_mobile = phone_is_mobile(phone=obj.phone)
        super().save_model(request, obj, form, change)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Patient]:
        # The generated search vector is large and never shown.
        return Patient.all_objects.defer("search_vector")


@admin.register(Appointment)
class AppointmentAdmin(StampedAdmin):
    list_display = ("starts_at", "ends_at", "patient", "clinician", "facility", "status")
    list_select_related = ("patient", "clinician", "facility")
    list_filter = ("status", "facility")
    search_fields = ("patient__mrn", "patient__family_name", "reason")
    date_hierarchy = "starts_at"
    raw_id_fields = ("patient", "clinician")
    readonly_fields = (
        *AUDIT_FIELDS,
        "checked_in_at",
        "completed_at",
        "cancelled_at",
        "reminder_due_at",
        "reminder_sent_at",
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Appointment]:
        return super().get_queryset(request).defer("patient__search_vector")


class PrescriptionItemInline(admin.TabularInline):
    model = PrescriptionItem
    extra = 0
    exclude = ("created_by", "updated_by", "version", "archived_at")


@admin.register(Prescription)
class PrescriptionAdmin(StampedAdmin):
    list_display = ("id", "patient", "prescriber", "status", "created_at")
    list_select_related = ("patient", "prescriber")
    list_filter = ("status",)
    search_fields = ("patient__mrn", "patient__family_name", "items__medication")
    raw_id_fields = ("patient", "prescriber", "appointment")
    inlines = (PrescriptionItemInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Prescription]:
        return super().get_queryset(request).defer("patient__search_vector")


@admin.register(PatientDocument)
class PatientDocumentAdmin(StampedAdmin):
    list_display = ("original_name", "title", "patient", "content_type", "size", "created_at")
    list_select_related = ("patient",)
    list_filter = ("content_type",)
    search_fields = ("title", "original_name", "patient__mrn")
    raw_id_fields = ("patient",)
    readonly_fields = (*AUDIT_FIELDS, "path", "content_type", "size", "sha256", "original_name")

    def get_queryset(self, request: HttpRequest) -> QuerySet[PatientDocument]:
        return super().get_queryset(request).defer("patient__search_vector")


# --- reminders (clinical/reminders/) -------------------------------------------------------------


class ReminderSettingsForm(forms.ModelForm):
    """Validated by ``clinical.reminders.rules.settings_problems``, the one rule set the API's
    serializer calls too. ``kinds`` and ``template`` are not "required" here: an empty list is
    valid (no reminders) and a blank template gets the rule's own message, as in the API."""

    kinds = forms.JSONField(required=False)
    template = forms.CharField(required=False, widget=forms.Textarea)

    class Meta:
        model = ReminderSettings
        fields = ("enabled", "kinds", "template", "quiet_start", "quiet_end")

    def _rule(self, name: str) -> Any:
        value = self.cleaned_data.get(name)
        problems = settings_problems({name: value})
        if problems:
            raise forms.ValidationError(problems[name])
        return value

    def clean_kinds(self) -> Any:
        return self._rule("kinds")

    def clean_template(self) -> Any:
        return self._rule("template")

    def clean_quiet_start(self) -> Any:
        return self._rule("quiet_start")

    def clean_quiet_end(self) -> Any:
        return self._rule("quiet_end")


@admin.register(ReminderMessage)
class ReminderMessageAdmin(AuditedModelAdmin):
    """The outbox, read-only: state, reason and provider ids are written by the dispatcher."""

    list_display = ("kind", "appointment", "due_at", "state", "reason", "attempts", "sent_at")
    list_filter = ("state", "kind", "reason")
    list_select_related = ("appointment",)
    search_fields = ("provider_sid",)
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReminderSettings)
class ReminderSettingsAdmin(AuditedModelAdmin):
    """One row per tenant, saved through the API's service (``reminder_settings_update``): the
    same rules, the same ``version`` bump (API ETags see admin edits), the same re-planning of
    pending reminders when kinds or ``enabled`` change."""

    list_display = ("enabled", "quiet_start", "quiet_end", "version", "updated_at")
    form = ReminderSettingsForm
    readonly_fields = ("version", "updated_at", "updated_by")

    # View and change come from the role matrix (apikit.policy: tenant_admin only), as for the
    # API. The first save creates the row; the matrix grants no delete.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_change_permission(request) and not ReminderSettings.objects.exists()

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        saved = reminder_settings_update(
            enabled=obj.enabled,
            kinds=obj.kinds,
            template=obj.template,
            quiet_start=obj.quiet_start,
            quiet_end=obj.quiet_end,
            # The version of the row as it is now: the admin has no If-Match of its own.
            expected_version=obj.version if change else SETTINGS_NEVER_SAVED,
            actor=request.user,
        )
        obj.pk = saved.settings.pk
        obj.refresh_from_db()
