"""Writes for the SMS layer: the tenant's own sender, the opt-out ledger, the daily quota
counter, delivery receipts and inbound messages. Domains (clinical reminders) call these; nothing
here knows about them except the receipt handler named in ``NOTIFY_RECEIPT_HANDLER``, called
explicitly (no signals)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework.exceptions import ValidationError

from apikit.concurrency import version_conflict, versioned_update
from apikit.errors import APIError
from audit.models import AuditEvent
from audit.services import audit_event_record, audit_object_type
from notify.models import ConsentEvent, DeliveryReceipt, OptOut, SmsSender
from notify.public.models import SenderRoute
from notify.secrets import (
    SecretKeysError,
    SecretUnreadableError,
    secret_encrypt,
    secret_is_current,
    secret_rotate,
)

logger = logging.getLogger(__name__)

# Twilio's default opt-out / opt-in keywords (matched on the whole, trimmed, case-folded body).
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})


def opted_out_phones(*, phones: Iterable[str]) -> set[str]:
    """Which of ``phones`` are on the opt-out ledger (one query)."""
    wanted = list({p for p in phones if p})
    if not wanted:
        return set()
    return set(OptOut.objects.filter(phone__in=wanted).values_list("phone", flat=True))


@transaction.atomic
def opt_out_record(
    *, phone: str, keyword: str, source: str, provider_sid: str = "", opted_out: bool = True
) -> None:
    """Add (``opted_out``) or remove a number from the ledger, with its event."""
    now = timezone.now()
    ConsentEvent.objects.create(
        phone=phone,
        action=ConsentEvent.Action.OPT_OUT if opted_out else ConsentEvent.Action.OPT_IN,
        keyword=keyword[:20],
        source=source,
        provider_sid=provider_sid[:64],
        occurred_at=now,
    )
    if opted_out:
        OptOut.objects.update_or_create(
            phone=phone, defaults={"keyword": keyword[:20], "opted_out_at": now}
        )
    else:
        OptOut.objects.filter(phone=phone).delete()


def inbound_message_handle(*, from_phone: str, body: str, provider_sid: str) -> str | None:
    """An SMS a patient sent us: STOP-family keywords opt the number out, START-family opt it
    back in. Returns ``"opt_out"`` / ``"opt_in"``, or None for any other text (ignored)."""
    word = body.strip().upper()
    if word in OPT_OUT_KEYWORDS:
        opt_out_record(
            phone=from_phone, keyword=word, source="inbound_sms", provider_sid=provider_sid
        )
        return "opt_out"
    if word in OPT_IN_KEYWORDS:
        opt_out_record(
            phone=from_phone,
            keyword=word,
            source="inbound_sms",
            provider_sid=provider_sid,
            opted_out=False,
        )
        return "opt_in"
    return None


def quota_reserve(*, day: date, wanted: int, limit: int) -> int:
    """Reserve up to ``wanted`` sends of today's ``limit``; returns how many were granted.
    Call inside the caller's transaction: the counter row is locked until it commits."""
    if wanted <= 0:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO notify_dailyusage (day, sent) VALUES (%s, 0) ON CONFLICT (day) DO NOTHING",
            [day],
        )
        cursor.execute("SELECT sent FROM notify_dailyusage WHERE day = %s FOR UPDATE", [day])
        (used,) = cursor.fetchone()
        granted = max(0, min(wanted, limit - used))
        if granted:
            cursor.execute(
                "UPDATE notify_dailyusage SET sent = sent + %s WHERE day = %s",
                [granted, day],
            )
    return granted


def quota_release(*, day: date, count: int) -> None:
    """Give back reservations that were never handed to the provider."""
    if count > 0:
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE notify_dailyusage SET sent = GREATEST(sent - %s, 0) WHERE day = %s",
                [count, day],
            )


def delivery_receipt_record(
    *, provider_sid: str, status: str, error_code: str, reference: str
) -> bool:
    """Store a verified status callback and hand it to the receipt handler. Duplicates (the
    same message and status again) are ignored; returns whether this one was new."""
    with transaction.atomic():
        _, created = DeliveryReceipt.objects.get_or_create(
            provider_sid=provider_sid[:64],
            status=status[:20],
            defaults={
                "error_code": error_code[:20],
                "reference": reference[:80],
                "received_at": timezone.now(),
            },
        )
        if created:
            handler: Any = import_string(settings.NOTIFY_RECEIPT_HANDLER)
            handler(
                reference=reference,
                provider_sid=provider_sid,
                status=status,
                error_code=error_code,
            )
    return created


# --- the tenant's own sender -------------------------------------------------------------------

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
NUMBER_INVALID = "Enter the number in E.164 form, e.g. +14155550100."
ACCOUNT_INVALID = "An account SID is 'AC' followed by 32 hexadecimal digits."
SERVICE_INVALID = "A messaging service SID is 'MG' followed by 32 hexadecimal digits."
ONE_SENDER = "Set either from_number or messaging_service_sid (exactly one)."
# Messages and a field name, not secrets:
TOKEN_REQUIRED = "Required with account_sid (its auth token) unless the account is unchanged."  # noqa: S105
TOKEN_WITHOUT_ACCOUNT = "Set account_sid with the token; without one the deployment's sends."  # noqa: S105
SENDER_TAKEN = (
    "This number or messaging service is already the sender of another organisation or of the "
    "deployment itself; a sender belongs to one organisation."
)
SECRET_FIELD = "auth_token"  # noqa: S105


@dataclass(frozen=True)
class SenderSaved:
    sender: SmsSender
    created: bool
    # Names only (``auth_token`` when a token was given): what the audit event records.
    changed_fields: list[str]


def _sender_validate(
    *, from_number: str, messaging_service_sid: str, account_sid: str, auth_token: str | None
) -> None:
    errors: dict[str, list[str]] = {}
    if from_number and not E164.match(from_number):
        errors["from_number"] = [NUMBER_INVALID]
    if messaging_service_sid and not SERVICE_SID.match(messaging_service_sid):
        errors["messaging_service_sid"] = [SERVICE_INVALID]
    if bool(from_number) == bool(messaging_service_sid):
        errors.setdefault("from_number", []).append(ONE_SENDER)
    if account_sid and not ACCOUNT_SID.match(account_sid):
        errors["account_sid"] = [ACCOUNT_INVALID]
    if auth_token and not account_sid:
        errors[SECRET_FIELD] = [TOKEN_WITHOUT_ACCOUNT]
    if errors:
        raise ValidationError(errors)
    deployment = {settings.TWILIO_FROM_NUMBER, settings.TWILIO_MESSAGING_SERVICE_SID} - {""}
    if {from_number, messaging_service_sid} & deployment:
        raise APIError(status=409, code="sender_taken", detail=SENDER_TAKEN)


def _token_stored(*, existing: SmsSender | None, account_sid: str, auth_token: str | None) -> str:
    """The encrypted token to store: a new one, the unchanged one, or none (deployment's)."""
    if not account_sid:
        return ""
    if auth_token:
        try:
            return secret_encrypt(auth_token)
        except SecretKeysError as error:
            raise APIError(status=503, code="secret_keys_missing", detail=str(error)) from None
    if existing is not None and existing.account_sid == account_sid:
        return existing.auth_token_encrypted
    raise ValidationError({SECRET_FIELD: [TOKEN_REQUIRED]})


def _route_save(*, tenant_id: int, sender: SmsSender) -> None:
    """Mirror the sender into the public routing table; its unique constraints make a number
    (or messaging service) one tenant's, whichever of two concurrent saves commits first."""
    try:
        with transaction.atomic():
            SenderRoute.objects.update_or_create(
                tenant_id=tenant_id,
                defaults={
                    "from_number": sender.from_number,
                    "messaging_service_sid": sender.messaging_service_sid,
                    "account_sid": sender.account_sid,
                    "has_secret": bool(sender.auth_token_encrypted),
                },
            )
    except IntegrityError:
        raise APIError(status=409, code="sender_taken", detail=SENDER_TAKEN) from None


@transaction.atomic
def sms_sender_save(
    *,
    tenant_id: int,
    from_number: str,
    messaging_service_sid: str,
    account_sid: str,
    auth_token: str | None,
    expected_version: int | None,
    actor: Any,
) -> SenderSaved:
    """Create or replace the active tenant's own sender. ``auth_token`` None (or empty) keeps
    the stored one when the account is unchanged. The token is encrypted before it reaches the
    database and is never returned; callers audit ``changed_fields`` (names, never values)."""
    _sender_validate(
        from_number=from_number,
        messaging_service_sid=messaging_service_sid,
        account_sid=account_sid,
        auth_token=auth_token,
    )
    existing = SmsSender.objects.select_for_update().filter(slot=1).first()
    changes: dict[str, Any] = {
        "from_number": from_number,
        "messaging_service_sid": messaging_service_sid,
        "account_sid": account_sid,
        "auth_token_encrypted": _token_stored(
            existing=existing, account_sid=account_sid, auth_token=auth_token
        ),
    }
    public = ("from_number", "messaging_service_sid", "account_sid")
    changed = [name for name in public if getattr(existing, name, "") != changes[name]]
    token_dropped = bool(existing and existing.auth_token_encrypted) and not account_sid
    if (auth_token and account_sid) or token_dropped:
        changed.append(SECRET_FIELD)
    if existing is None:
        sender = SmsSender.objects.create(**changes, created_by=actor, updated_by=actor)
    else:
        sender = versioned_update(
            instance=existing,
            expected_version=existing.version if expected_version is None else expected_version,
            changes=changes,
            actor=actor,
        )
    _route_save(tenant_id=tenant_id, sender=sender)
    return SenderSaved(sender=sender, created=existing is None, changed_fields=changed)


@transaction.atomic
def sms_sender_delete(*, tenant_id: int, expected_version: int | None) -> bool:
    """Remove the tenant's own sender (and its stored token): back to the deployment's.
    Returns whether there was one."""
    existing = SmsSender.objects.select_for_update().filter(slot=1).first()
    if existing is None:
        return False
    if expected_version is not None and expected_version != existing.version:
        raise version_conflict(sent=expected_version, current=existing.version)
    existing.delete()
    SenderRoute.objects.filter(tenant_id=tenant_id).delete()
    return True


def sender_route_resync(*, tenant_id: int) -> None:
    """After the active tenant's schema was restored from a backup: the public routing table
    mirrors the restored sender again, or forgets the tenant's route when the backup holds none,
    so delivery receipts and STOP messages reach the restored tenant. Raises APIError 409
    ``sender_taken`` when another tenant claimed the number since the backup was taken."""
    sender = SmsSender.objects.filter(slot=1).first()
    if sender is None:
        SenderRoute.objects.filter(tenant_id=tenant_id).delete()
        return
    _route_save(tenant_id=tenant_id, sender=sender)


@dataclass
class RotationCount:
    rotated: int = 0
    current: int = 0
    unreadable: int = 0


@transaction.atomic
def sms_secrets_rotate() -> RotationCount:
    """Re-encrypt the active tenant's stored secrets under the newest key
    (``MultiFernet.rotate``). Idempotent: a value already under the newest key is left as it is.
    A value no configured key opens is counted, not changed. Audited with field names only."""
    count = RotationCount()
    for sender in SmsSender.objects.select_for_update().exclude(auth_token_encrypted=""):
        if secret_is_current(sender.auth_token_encrypted):
            count.current += 1
            continue
        try:
            rotated = secret_rotate(sender.auth_token_encrypted)
        except SecretUnreadableError:
            count.unreadable += 1
            logger.error("sms sender secret unreadable", extra={"sender": str(sender.pk)})
            continue
        # No version bump: the secret did not change, only the key it is stored under.
        SmsSender.objects.filter(pk=sender.pk).update(auth_token_encrypted=rotated)
        audit_event_record(
            context=None,
            action=AuditEvent.Action.UPDATE,
            object_type=audit_object_type(SmsSender),
            object_ids=[sender.pk],
            changed_fields=["auth_token_encrypted"],
        )
        count.rotated += 1
    return count
