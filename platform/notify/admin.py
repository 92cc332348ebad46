"""The tenant's own sender, the opt-out ledger and delivery receipts in each tenant's admin
(read-mostly)."""

from typing import Any

from django.contrib import admin

from audit.admin_audit import AuditedModelAdmin
from notify.models import ConsentEvent, DailyUsage, DeliveryReceipt, OptOut, SmsSender


@admin.register(SmsSender)
class SmsSenderAdmin(AuditedModelAdmin):
    """Read-only: changes go through ``notify.services.sms_sender_save`` (the API), which also
    keeps the public route table in step; the encrypted token is never shown."""

    list_display = ("from_number", "messaging_service_sid", "account_sid", "version", "updated_at")
    fields = ("from_number", "messaging_service_sid", "account_sid", "version", "updated_at")
    readonly_fields = fields

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(OptOut)
class OptOutAdmin(AuditedModelAdmin):
    list_display = ("phone", "keyword", "opted_out_at")
    search_fields = ("phone",)


@admin.register(ConsentEvent)
class ConsentEventAdmin(AuditedModelAdmin):
    list_display = ("phone", "action", "keyword", "source", "occurred_at")
    list_filter = ("action", "source")
    search_fields = ("phone",)

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(DeliveryReceipt)
class DeliveryReceiptAdmin(AuditedModelAdmin):
    list_display = ("provider_sid", "status", "error_code", "reference", "received_at")
    list_filter = ("status",)
    search_fields = ("provider_sid", "reference")

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(DailyUsage)
class DailyUsageAdmin(AuditedModelAdmin):
    list_display = ("day", "sent")
