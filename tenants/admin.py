"""The platform operators' admin, served on the public host only (settings/urls_public.py).

Changing a tenant's kind is an operator action here (the tenant change form): refused, with what
exists listed, while the tenant holds data of a domain the new kind would lose (tenants.kinds).

Tenant-schema models are never registered here, and tenant registry models are never registered
on the tenant hosts' admin. Every admin is an ``audit.admin_audit.AuditedModelAdmin``: writes and
actions are on the public schema's audit trail (``audit.public``), integer ids recorded as
``audit_object_id`` gives them.
"""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.admin_site import LoginGuardedAdminSite
from accounts.models import User
from audit.admin_audit import AuditedModelAdmin
from tenants.kinds import KindChangeRefusedError, kind_change_blockers
from tenants.lock_capacity import provisioning_warning
from tenants.models import Domain, MigrationFailure, MigrationRun, Plan, Tenant
from tenants.routing import routing_changed
from tenants.services import (
    ProvisioningError,
    tenant_kind_change,
    tenant_provision,
    tenant_set_status,
)


class OperatorAdminSite(LoginGuardedAdminSite):
    """Logins are guarded like a tenant's (schema ``public``; events in audit.public's trail)."""

    site_header = "Verdant platform operations"
    site_title = "Verdant operators"
    index_title = "Tenants, domains and plans"

    def has_permission(self, request: HttpRequest) -> bool:
        return getattr(request, "tenant", None) is None and super().has_permission(request)


operator_site = OperatorAdminSite(name="operator_admin")


class TenantChangeForm(forms.ModelForm):
    """An existing tenant: its kind changes only while no data of a domain it would lose exists
    (checked here for the form's message, and again under a lock by ``tenant_kind_change``)."""

    class Meta:
        model = Tenant
        fields = ["name", "kind", "plan", "status"]

    def clean_kind(self) -> str:
        kind = str(self.cleaned_data["kind"])
        if self.instance.pk is None or kind == self.initial.get("kind"):
            return kind
        stored = Tenant.objects.get(pk=self.instance.pk)
        found = kind_change_blockers(tenant=stored, kind=kind)
        if found:
            raise forms.ValidationError(
                str(KindChangeRefusedError(tenant=stored, kind=kind, found=found)),
                code="kind_change_refused",
            )
        return kind


class TenantProvisionForm(forms.ModelForm):
    admin_email = forms.EmailField(help_text="The tenant's first tenant_admin.")
    admin_password = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Leave blank to generate one; it is shown once after saving.",
    )

    class Meta:
        model = Tenant
        fields = ["slug", "name", "kind", "plan"]


@admin.register(Tenant, site=operator_site)
class TenantAdmin(AuditedModelAdmin):
    list_display = ["slug", "name", "kind", "plan", "status", "ready", "created_at"]
    list_filter = ["kind", "status", "plan"]
    search_fields = ["slug", "name"]
    list_select_related = ["plan"]
    actions = ["suspend", "reactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        return super().get_queryset(request).filter(is_template=False)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        kwargs["form"] = TenantProvisionForm if obj is None else TenantChangeForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["slug", "name", "kind", "plan", "admin_email", "admin_password"]
        return ["slug", "schema_name", "name", "kind", "plan", "status", "ready", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return []
        return ["slug", "schema_name", "ready", "created_at"]

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            with transaction.atomic():
                obj.save(update_fields=["name", "plan"])
                transaction.on_commit(routing_changed)
            if "status" in form.changed_data:
                # Through the service, as the actions: one rule for a suspension (routing and the
                # real-time publish), never a bare save of the field.
                tenant_set_status(slug=obj.slug, status=obj.status)
            if "kind" in form.changed_data:
                self._change_kind(request, obj)
            return
        try:
            result = tenant_provision(
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                kind=form.cleaned_data["kind"],
                plan_name=form.cleaned_data["plan"].name,
                admin_email=form.cleaned_data["admin_email"],
                admin_password=form.cleaned_data["admin_password"] or None,
            )
        except ProvisioningError as exc:
            raise forms.ValidationError(str(exc)) from None
        obj.pk = result.tenant.pk
        self.message_user(
            request,
            f"Provisioned {result.domain}; admin {result.admin_email} / {result.admin_password}",
            messages.SUCCESS,
        )
        warning = provisioning_warning()
        if warning:
            self.message_user(request, warning, messages.WARNING)

    def _change_kind(self, request: HttpRequest, obj: Tenant) -> None:
        try:
            tenant_kind_change(slug=obj.slug, kind=obj.kind)
        except KindChangeRefusedError as refused:
            # Data written since the form's check: the rest of the change is saved, the kind not.
            self.message_user(request, str(refused), messages.ERROR)
            return
        self.message_user(
            request,
            f"{obj.slug} is now {obj.get_kind_display()}; its hosts serve the new kind "
            "within seconds.",
            messages.SUCCESS,
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # `manage.py drop_tenant <slug> --confirm` only: it destroys data.

    @admin.action(description="Suspend selected tenants (data kept)")
    def suspend(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_set_status(slug=tenant.slug, status=Tenant.Status.SUSPENDED)
        self.message_user(request, f"Suspended {queryset.count()} tenant(s).")

    @admin.action(description="Reactivate selected tenants")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[Tenant]) -> None:
        for tenant in queryset:
            tenant_set_status(slug=tenant.slug, status=Tenant.Status.ACTIVE)
        self.message_user(request, f"Reactivated {queryset.count()} tenant(s).")


@admin.register(Domain, site=operator_site)
class DomainAdmin(AuditedModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain", "tenant__slug"]
    list_select_related = ["tenant"]

    def save_model(self, request: HttpRequest, obj: Domain, form: Any, change: bool) -> None:
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            transaction.on_commit(routing_changed)

    def delete_model(self, request: HttpRequest, obj: Domain) -> None:
        with transaction.atomic():
            super().delete_model(request, obj)
            transaction.on_commit(routing_changed)


@admin.register(Plan, site=operator_site)
class PlanAdmin(AuditedModelAdmin):
    list_display = [
        "name",
        "requests_per_minute",
        "user_burst_per_minute",
        "user_sustained_per_day",
        "sms_daily_quota",
        "max_users",
    ]

    def save_model(self, request: HttpRequest, obj: Plan, form: Any, change: bool) -> None:
        # Cached tenants carry their plan: republish routing so new limits apply without a restart.
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            transaction.on_commit(routing_changed)


@admin.register(User, site=operator_site)
class OperatorUserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_active", "is_superuser"]
    search_fields = ["email", "full_name"]
    list_filter = ["is_active", "is_superuser"]
    fieldsets = (
        (None, {"fields": ("email", "password", "full_name")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "password1", "password2")}),)
    filter_horizontal = ()


class MigrationFailureInline(admin.TabularInline):
    model = MigrationFailure
    fields = ("schema_name", "error", "failed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(MigrationRun, site=operator_site)
class MigrationRunAdmin(AuditedModelAdmin):
    """Read-only: the migration Job (tenants.migration_progress) writes these rows; operators
    follow a run here (done / left / failed) and read which schemas failed."""

    list_display = (
        "id",
        "status",
        "started_at",
        "updated_at",
        "finished_at",
        "tenant_schemas",
        "already_current",
        "to_migrate",
        "done",
        "left",
        "failed",
        "parallel",
        "continue_on_error",
        "host",
    )
    list_filter = ("status",)
    readonly_fields = (*list_display[1:], "executor")
    fields = readonly_fields
    inlines = [MigrationFailureInline]

    @admin.display(description="left")
    def left(self, obj: MigrationRun) -> int:
        return obj.left

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
