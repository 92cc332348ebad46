"""Which tenant owns which SMS sender: a shared app, so its table exists in the public schema
only. A provider webhook names the receiving number (or messaging service) and the account it
belongs to, not a tenant; this table answers "whose is it?" with one indexed query before any
tenant schema is entered. ``notify.services.sms_sender_save`` keeps it in step with the
tenant's own ``notify.SmsSender`` row, in the same transaction (docs/sms-senders.md)."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class SenderRoute(models.Model):
    tenant = models.OneToOneField(
        "tenants.Tenant", on_delete=models.CASCADE, related_name="sms_sender_route"
    )
    # The tenant's own provider account; "" when it sends through the deployment's account.
    account_sid = models.CharField(max_length=34, blank=True)
    from_number = models.CharField(max_length=20, blank=True)
    messaging_service_sid = models.CharField(max_length=34, blank=True)
    # Whether the tenant stored its own auth token (the token itself stays in the tenant's schema).
    has_secret = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "notify_public_senderroute"
        constraints = [
            # A number or a messaging service belongs to one provider account, hence one tenant:
            # two tenants can never both claim one, whatever the race between their saves.
            models.UniqueConstraint(
                fields=["from_number"],
                condition=~Q(from_number=""),
                name="notify_route_unique_number",
            ),
            models.UniqueConstraint(
                fields=["messaging_service_sid"],
                condition=~Q(messaging_service_sid=""),
                name="notify_route_unique_service",
            ),
            models.CheckConstraint(
                condition=~Q(from_number="") | ~Q(messaging_service_sid=""),
                name="notify_route_has_sender",
            ),
        ]

    def __str__(self) -> str:
        return self.from_number or self.messaging_service_sid
