"""SMS plumbing shared by every domain, per tenant schema: the opt-out ledger (STOP / START),
delivery receipts from the provider, and the daily send counter the quota is checked against."""

from __future__ import annotations

from django.db import models

from apikit.ids import new_id


class OptOut(models.Model):
    """Numbers that must not receive SMS from this tenant (current state of the ledger). Every
    send checks it; a START keyword removes the row."""

    phone = models.CharField(max_length=20, primary_key=True)
    keyword = models.CharField(max_length=20, blank=True)
    opted_out_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.phone


class ConsentEvent(models.Model):
    """The append-only ledger behind OptOut: every STOP / START received (or set by staff)."""

    class Action(models.TextChoices):
        OPT_OUT = "opt_out", "Opted out"
        OPT_IN = "opt_in", "Opted in"

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    phone = models.CharField(max_length=20, db_index=True)
    action = models.CharField(max_length=10, choices=Action.choices)
    keyword = models.CharField(max_length=20, blank=True)
    # "inbound_sms" (the provider's webhook) or "staff".
    source = models.CharField(max_length=20)
    provider_sid = models.CharField(max_length=64, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.phone} {self.action}"


class DeliveryReceipt(models.Model):
    """A status callback from the provider, verified and de-duplicated by (message, status)."""

    id = models.UUIDField(primary_key=True, default=new_id, editable=False)
    provider_sid = models.CharField(max_length=64)
    status = models.CharField(max_length=20)
    error_code = models.CharField(max_length=20, blank=True)
    # The sender's own reference, carried in the signed callback URL ("<kind>:<uuid>").
    reference = models.CharField(max_length=80, blank=True)
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider_sid", "status"], name="notify_receipt_sid_status"
            )
        ]

    def __str__(self) -> str:
        return f"{self.provider_sid} {self.status}"


class DailyUsage(models.Model):
    """Messages handed to the provider per UTC day: the Plan's ``sms_daily_quota`` caps it."""

    day = models.DateField(primary_key=True)
    sent = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.day}: {self.sent}"
