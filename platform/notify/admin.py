"""The opt-out ledger and delivery receipts in each tenant's admin (read-mostly)."""

from typing import Any

from django.contrib import admin

from audit.admin_audit import AuditedModelAdmin
from notify.models import ConsentEvent, DailyUsage, DeliveryReceipt, OptOut


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
