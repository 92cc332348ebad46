"""Sync devices on each tenant host's Django admin: tenant admins list them and revoke lost
ones (through ``sync.services.device_revoke``, so every process stops accepting their tokens)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from audit.admin_audit import AuditedModelAdmin
from sync.models import Device, SyncState
from sync.services import device_revoke


class _TenantOnly(AuditedModelAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        # The tables exist only in tenant schemas.
        return getattr(request, "tenant", None) is not None and super().has_module_permission(
            request
        )


@admin.register(Device)
class DeviceAdmin(_TenantOnly):
    list_display = ["name", "platform", "user", "created_at", "last_seen_at", "revoked_at"]
    list_filter = ["platform", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "user__email"]
    list_select_related = ["user"]
    readonly_fields = ["id", "user", "created_at", "last_seen_at", "revoked_at", "revoked_by"]
    fields = ["id", "user", "name", "platform", *readonly_fields[2:]]
    actions = ["revoke_devices"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # devices register themselves through the API

    @admin.action(description="Revoke the selected devices (lost or stolen)")
    def revoke_devices(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        count = 0
        for device in queryset.filter(revoked_at__isnull=True):
            device_revoke(device=device, actor=request.user)
            count += 1
        self.message_user(request, f"Revoked {count} device(s).", messages.SUCCESS)


@admin.register(SyncState)
class SyncStateAdmin(_TenantOnly):
    list_display = ["min_retained_txid", "retention_days", "compacted_at"]
    readonly_fields = ["min_retained_txid", "compacted_at", "last_compaction_removed"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return not SyncState.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
