"""Reads for the SMS layer: the tenant's own sender, and which tenant owns a webhook's number."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Q
from django_tenants.utils import get_public_schema_name

from apikit.tenancy import current_schema_name
from notify.models import SmsSender
from notify.public.models import SenderRoute
from notify.secrets import secret_decrypt


def sms_sender_get() -> SmsSender | None:
    """The active tenant's own sender, or None (it uses the deployment's)."""
    return SmsSender.objects.filter(slot=1).first()


@dataclass(frozen=True)
class SenderConfig:
    """What a message goes out with, and what signs the provider's webhooks about it."""

    account_sid: str
    auth_token: str
    from_number: str
    messaging_service_sid: str
    # The tenant's own sender (else the deployment's, settings TWILIO_*).
    own: bool


def sender_config_deployment() -> SenderConfig:
    """The deployment-wide sender (settings ``TWILIO_*``), every tenant's default."""
    return SenderConfig(
        account_sid=settings.TWILIO_ACCOUNT_SID,
        auth_token=settings.TWILIO_AUTH_TOKEN,
        from_number=settings.TWILIO_FROM_NUMBER,
        messaging_service_sid=settings.TWILIO_MESSAGING_SERVICE_SID,
        own=False,
    )


def sender_config_get() -> SenderConfig:
    """The active tenant's sender, or the deployment's (also on the public schema). A tenant
    sender on the deployment's account has its own number but the deployment's credentials.
    Raises ``notify.secrets.SecretUnreadableError`` / ``SecretKeysError`` when its stored token
    cannot be opened with ``NOTIFY_SECRET_KEYS``."""
    sender = None if current_schema_name() == get_public_schema_name() else sms_sender_get()
    if sender is None:
        return sender_config_deployment()
    own_account = bool(sender.account_sid)
    return SenderConfig(
        account_sid=sender.account_sid if own_account else settings.TWILIO_ACCOUNT_SID,
        auth_token=(
            secret_decrypt(sender.auth_token_encrypted)
            if own_account
            else settings.TWILIO_AUTH_TOKEN
        ),
        from_number=sender.from_number,
        messaging_service_sid=sender.messaging_service_sid,
        own=True,
    )


@dataclass(frozen=True)
class SenderOwner:
    """Who a webhook's number belongs to: a tenant's own sender (``tenant_id``), or nobody's
    (``tenant_id`` None: the deployment's shared sender, or a number Verdant does not know).
    ``conflict``: the number and the messaging service named belong to different tenants."""

    tenant_id: int | None
    conflict: bool = False


def sender_owner_find(*, number: str, messaging_service_sid: str) -> SenderOwner:
    """Which tenant owns the receiving ``number`` (or ``messaging_service_sid``), from the public
    routing table: one indexed query, valid before any tenant schema is entered. Numbers and
    services are unique across tenants (constraints on SenderRoute). The account is not part of
    the key: tenants with their own number may still send through the deployment's account."""
    match = Q(pk__in=[])
    if number:
        match |= Q(from_number=number)
    if messaging_service_sid:
        match |= Q(messaging_service_sid=messaging_service_sid)
    owners = set(SenderRoute.objects.filter(match).values_list("tenant_id", flat=True)[:2])
    if len(owners) > 1:
        return SenderOwner(tenant_id=None, conflict=True)
    return SenderOwner(tenant_id=owners.pop() if owners else None)
