"""The audit trail on each tenant host's Django admin: tenant admins may look, nobody may add,
change or delete (the database refuses it too)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from audit.admin_audit import AuditedModelAdmin
from audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(AuditedModelAdmin):
    list_display = [
        "occurred_at",
        "actor_email",
        "action",
        "allowed",
        "object_type",
        "ip",
        "request_id",
    ]
    list_filter = ["action", "allowed", "object_type"]
    search_fields = ["=actor_email", "=request_id", "=trace_id", "object_type"]
    date_hierarchy = "occurred_at"
    ordering = ["-id"]
    list_per_page = 50
    # No COUNT(*) of the whole (large, growing) table on every changelist page.
    show_full_result_count = False
    actions = None

    def _on_tenant_host(self, request: HttpRequest) -> bool:
        # The table exists only in tenant schemas; the public host's admin must not offer it.
        return getattr(request, "tenant", None) is not None

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self._on_tenant_host(request) and super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._on_tenant_host(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
