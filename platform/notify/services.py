"""Writes for the SMS layer: the opt-out ledger, the daily quota counter, delivery receipts and
inbound messages. Domains (clinical reminders) call these; nothing here knows about them except
the receipt handler named in ``NOTIFY_RECEIPT_HANDLER``, called explicitly (no signals)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import date
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from notify.models import ConsentEvent, DeliveryReceipt, OptOut

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
