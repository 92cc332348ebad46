"""SMS plumbing shared by every domain, per tenant schema: the tenant's own sender (if any), the
opt-out ledger (STOP / START), delivery receipts from the provider, and the daily send counter
the quota is checked against."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from apikit.ids import new_id
from apikit.models import TenantModel


class SmsSender(TenantModel):
    """The tenant's own SMS sender; without a row the deployment's (settings ``TWILIO_*``) is
    used. At most one row (``slot``). The auth token is stored encrypted (``notify.secrets``,
    MultiFernet under ``NOTIFY_SECRET_KEYS``) and never leaves the server: the API says only
    whether one is set. ``notify.public.SenderRoute`` mirrors the public parts for webhooks."""

    slot = models.PositiveSmallIntegerField(default=1, unique=True, editable=False)
    # E.164; or a messaging service, which picks the number itself (one of the two).
    from_number = models.CharField(max_length=20, blank=True)
    messaging_service_sid = models.CharField(max_length=34, blank=True)
    # The tenant's own provider account and its auth token; both empty: the deployment's account.
    account_sid = models.CharField(max_length=34, blank=True)
    auth_token_encrypted = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(slot=1), name="notify_sender_single_row"),
            models.CheckConstraint(
                condition=~Q(from_number="") | ~Q(messaging_service_sid=""),
                name="notify_sender_has_sender",
            ),
            models.CheckConstraint(
                condition=(Q(account_sid="") & Q(auth_token_encrypted=""))
                | (~Q(account_sid="") & ~Q(auth_token_encrypted="")),
                name="notify_sender_account_with_token",
            ),
        ]

    def __str__(self) -> str:
        return self.from_number or self.messaging_service_sid


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
