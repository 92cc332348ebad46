"""The tenant admins' view of their staff, on each tenant host's Django admin."""

from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from accounts import services
from accounts.authentication import identity_changed
from accounts.models import User
from apikit.errors import APIError

# Access is by role (accounts.roles), not by groups.
admin.site.unregister(Group)


@admin.register(User)
class TenantUserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "role", "is_active", "date_joined"]
    list_filter = ["role", "is_active"]
    search_fields = ["email", "full_name"]
    readonly_fields = ["date_joined", "updated_at", "last_login"]
    fieldsets = (
        (None, {"fields": ("email", "password", "full_name")}),
        ("Access", {"fields": ("role", "is_active")}),
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

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        super().delete_model(request, obj)
        identity_changed()

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        super().delete_queryset(request, queryset)
        identity_changed()

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if change:
            try:
                services.user_update(
                    user=obj, role=obj.role, full_name=obj.full_name, is_active=obj.is_active
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
