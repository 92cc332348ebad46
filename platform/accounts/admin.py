"""The tenant admins' view of their staff, on each tenant host's Django admin.

Audited like every admin (``audit.admin_audit.AuditedModelAdmin``): a role change is an
``update`` event naming ``role``, a password set here one naming ``password``. SimpleJWT's token
admins are registered again as audited subclasses (a tenant admin may delete a blacklist entry,
which un-revokes a refresh token)."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest
from rest_framework_simplejwt.token_blacklist import admin as token_admin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts import services
from accounts.admin_forms import SeatCheckedUserChangeForm, SeatCheckedUserCreationForm
from accounts.models import User
from apikit.errors import APIError
from audit.admin_audit import AuditedModelAdmin

# Access is by role (accounts.roles), not by groups.
admin.site.unregister(Group)


class AuditedOutstandingTokenAdmin(AuditedModelAdmin, token_admin.OutstandingTokenAdmin):
    pass


class AuditedBlacklistedTokenAdmin(AuditedModelAdmin, token_admin.BlacklistedTokenAdmin):
    pass


# ``token_admin`` is imported above, so its registrations exist here to be replaced (autodiscovery
# reaches token_blacklist after accounts, and finds the module already imported).
admin.site.unregister(OutstandingToken)
admin.site.register(OutstandingToken, AuditedOutstandingTokenAdmin)
admin.site.unregister(BlacklistedToken)
admin.site.register(BlacklistedToken, AuditedBlacklistedTokenAdmin)


@admin.register(User)
class TenantUserAdmin(AuditedModelAdmin, DjangoUserAdmin):
    # The plan's seat limit (max_users) is a form error on both pages, never a 500.
    add_form = SeatCheckedUserCreationForm
    form = SeatCheckedUserChangeForm
    ordering = ["email"]
    list_display = ["email", "full_name", "role", "is_active", "email_verified_at", "date_joined"]
    list_filter = ["role", "is_active"]
    search_fields = ["email", "full_name"]
    # Verified and deactivated are told apart (accounts.models.User): "active" unticked here is a
    # deactivation, which no emailed link undoes; verification happens only through the link.
    readonly_fields = [
        "date_joined",
        "updated_at",
        "last_login",
        "email_verified_at",
        "deactivated_at",
    ]
    fieldsets = (
        (None, {"fields": ("email", "password", "full_name")}),
        ("Access", {"fields": ("role", "is_active", "email_verified_at", "deactivated_at")}),
        ("Dates", {"fields": ("last_login", "date_joined", "updated_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "role", "password1", "password2")}),
    )
    filter_horizontal = ()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return getattr(request, "tenant", None) is not None and super().has_module_permission(
            request
        )

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if change:
            try:
                services.user_update(
                    user=obj,
                    role=obj.role,
                    full_name=obj.full_name,
                    # Only a changed box: saving an unverified account's name must not turn
                    # "not verified yet" into "deactivated".
                    is_active=obj.is_active if "is_active" in form.changed_data else None,
                )
            except APIError as exc:
                self.message_user(request, str(exc.detail), messages.ERROR)
            return
        created = services.user_create(
            email=obj.email,
            role=obj.role,
            password=form.cleaned_data.get("password1"),
            is_active=True,
            full_name=obj.full_name,
        )
        obj.pk = created.pk
