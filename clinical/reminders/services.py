"""Reminder writes: keeping the outbox in step with appointments, and delivering it.

Exactly-once (at most once, and at least once when the provider can be asked): a row is claimed
(``pending`` -> ``sending``, committed) before the gateway is called and records the provider id
after; a ``sending`` row whose worker died is never resent blindly — the provider is asked first
(docs/reminders.md, "Exactly once").
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as time_of_day
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable
from rest_framework.exceptions import ValidationError

from apikit.concurrency import version_conflict, versioned_update
from apikit.ids import new_id, parse_uuid
from apikit.tenancy import current_schema_name, tenant_schema_required
from apikit.tenant_tasks import tenant_task_send
from audit.services import audit_event_record
from clinical.models import (
    Appointment,
    AppointmentStatus,
    ReminderMessage,
    ReminderSettings,
    ReminderState,
)
from clinical.reminders.rules import (
    ReminderRules,
    kinds_parse,
    next_utc_midnight,
    quiet_hours_end,
    reminders_planned,
    render,
    rules_load,
    settings_problems,
)
from clinical.reminders.selectors import SETTINGS_NEVER_SAVED
from notify.gateway import RECIPIENT_UNSUBSCRIBED, Gateway, GatewayError, gateway_get
from notify.services import opt_out_record, opted_out_phones, quota_release, quota_reserve
from tenants.models import Plan
from tenants.services import tenant_host

logger = logging.getLogger(__name__)

TABLE = ReminderMessage._meta.db_table
REFERENCE_PREFIX = "reminder:"
_OPEN = (ReminderState.PENDING, ReminderState.DEFERRED)


# The Celery name of clinical.tasks.reminders_dispatch_task (beat, routes and queued messages
# name it): queued by name, so this module never imports the tasks that call it.
DISPATCH_TASK = "clinical.reminders_dispatch"


def require_tenant_schema() -> str:
    return tenant_schema_required(what="Reminder work")


def reminders_enqueue_dispatch(*, schema_name: str) -> None:
    """Queue a dispatch run for one tenant on the sms queue."""
    tenant_task_send(name=DISPATCH_TASK, schema_name=schema_name, queue=settings.CELERY_SMS_QUEUE)


# --- keeping the outbox in step with appointments ----------------------------------------------


def reminders_sync_for_appointments(
    *, appointment_ids: Sequence[uuid.UUID], now: datetime | None = None
) -> None:
    """(Re)create or cancel the pending reminders of these appointments, set-wise, inside the
    caller's transaction; delivery of anything already due is enqueued on commit.

    One query for the appointments, one for their open reminders, at most two UPDATEs and one
    INSERT whatever the number of appointments. Sent or in-flight rows are never touched; a
    reminder cancelled by a reschedule comes back if the appointment moves back.
    """
    ids = list(dict.fromkeys(appointment_ids))
    if not ids:
        return
    require_tenant_schema()
    now = now or timezone.now()
    rules = rules_load()
    appointments = list(
        Appointment.all_objects.filter(pk__in=ids).values_list(
            "id", "status", "starts_at", "archived_at"
        )
    )
    desired: set[tuple[uuid.UUID, str, datetime]] = set()
    closed: dict[uuid.UUID, str] = {}
    for appointment_id, status, starts_at, archived_at in appointments:
        if archived_at is not None:
            closed[appointment_id] = "appointment_archived"
        elif status != AppointmentStatus.SCHEDULED:
            closed[appointment_id] = f"appointment_{status}"
        elif rules.enabled:
            for kind, due_at in reminders_planned(starts_at=starts_at, kinds=rules.kinds, now=now):
                desired.add((appointment_id, kind, due_at))
        else:
            closed[appointment_id] = "reminders_disabled"
    cancel: dict[str, list[uuid.UUID]] = {}
    for row_id, appointment_id, kind, due_at in ReminderMessage.objects.filter(
        appointment_id__in=ids, state__in=_OPEN
    ).values_list("id", "appointment_id", "kind", "due_at"):
        if (appointment_id, kind, due_at) not in desired:
            cancel.setdefault(closed.get(appointment_id, "rescheduled"), []).append(row_id)
    for reason, row_ids in cancel.items():
        ReminderMessage.objects.filter(pk__in=row_ids, state__in=_OPEN).update(
            state=ReminderState.CANCELLED, reason=reason, updated_at=now
        )
    if desired and _insert(desired, now=now):
        _deliver_on_commit()


def _insert(desired: set[tuple[uuid.UUID, str, datetime]], *, now: datetime) -> bool:
    """Insert the wanted rows (reviving cancelled ones); True if any is due now."""
    rows = sorted(desired, key=lambda row: (str(row[0]), row[1]))
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO clinical_remindermessage AS r (id, appointment_id, kind, due_at, send_after, state, reason,
                attempts, phone, body, provider_sid, provider_status, error_code,
                created_at, updated_at)
            SELECT v.id, v.appointment_id, v.kind, v.due_at, v.due_at, 'pending', '', 0, '', '',
                '', '', '', %s, %s
            FROM unnest(%s::uuid[], %s::uuid[], %s::text[], %s::timestamptz[])
                AS v(id, appointment_id, kind, due_at)
            ON CONFLICT (appointment_id, kind, due_at) DO UPDATE
                SET state = 'pending', reason = '', send_after = EXCLUDED.send_after,
                    updated_at = EXCLUDED.updated_at
                WHERE r.state = 'cancelled'
            RETURNING r.send_after
            """,
            [
                now,
                now,
                [new_id() for _ in rows],
                [row[0] for row in rows],
                [row[1] for row in rows],
                [row[2] for row in rows],
            ],
        )
        return any(send_after <= now for (send_after,) in cursor.fetchall())


def _deliver_on_commit() -> None:
    schema = current_schema_name()

    def enqueue() -> None:
        try:
            reminders_enqueue_dispatch(schema_name=schema)
        except BrokerUnavailable as error:
            # Expected while the broker is down: one line, not a traceback per booking.
            logger.warning(
                "reminder delivery not queued (broker unavailable: %s); the beat sweep queues it",
                error,
            )

    # robust: the appointment is committed whatever the broker does; the beat sweep catches up.
    transaction.on_commit(enqueue, robust=True)


# --- delivering --------------------------------------------------------------------------------


@dataclass
class DispatchReport:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retried: int = 0
    unknown: int = 0
    deferred: int = 0
    skipped: int = 0
    cancelled: int = 0
    reconciled_sent: int = 0
    reconciled_resend: int = 0
    more: bool = False
    reasons: dict[str, int] = field(default_factory=dict)

    def count(self, state: str, reason: str = "") -> None:
        names: dict[str, str] = {
            ReminderState.SENT: "sent",
            ReminderState.FAILED: "failed",
            ReminderState.PENDING: "retried",
            ReminderState.UNKNOWN: "unknown",
            ReminderState.DEFERRED: "deferred",
            ReminderState.SKIPPED: "skipped",
            ReminderState.CANCELLED: "cancelled",
        }
        attribute = names.get(state)
        if attribute:
            setattr(self, attribute, getattr(self, attribute) + 1)
        if reason:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1


@dataclass(frozen=True)
class _Outgoing:
    id: uuid.UUID
    phone: str
    body: str
    attempts: int


@dataclass(frozen=True)
class _Outcome:
    id: uuid.UUID
    state: str
    reason: str = ""
    provider_sid: str = ""
    provider_status: str = ""
    error_code: str = ""
    send_after: datetime | None = None


def _conf(name: str, default: Any) -> Any:
    return getattr(settings, name, default)


def reminders_dispatch(
    *,
    gateway: Gateway | None = None,
    batch_size: int | None = None,
    time_budget: float | None = None,
    now: datetime | None = None,
) -> DispatchReport:
    """Deliver this tenant's due reminders: reconcile stuck rows, then claim batches (``FOR
    UPDATE SKIP LOCKED``, so any number of workers can run this at once) and send them, until
    nothing is due or ``time_budget`` seconds have passed (``report.more`` then says so).
    ``now`` pins the clock the rules see (tests); by default each batch reads the time."""
    require_tenant_schema()
    gateway = gateway or gateway_get()
    batch_size = batch_size or int(_conf("REMINDER_BATCH_SIZE", 200))
    budget = float(time_budget if time_budget is not None else _conf("REMINDER_TIME_BUDGET", 120))
    deadline = time.monotonic() + budget
    report = DispatchReport()
    _reconcile(gateway=gateway, report=report, now=now or timezone.now())
    rules = rules_load()
    limit = _daily_quota()
    while True:
        if time.monotonic() >= deadline:
            report.more = True
            break
        batch = _claim(
            batch_size=batch_size,
            rules=rules,
            limit=limit,
            report=report,
            now=now or timezone.now(),
        )
        if batch is None:
            break
        if not _send(batch=batch, gateway=gateway, report=report):
            break
    if report.reasons:
        logger.info("reminders dispatched", extra={"reminders": _report_dict(report)})
    return report


def _report_dict(report: DispatchReport) -> dict[str, Any]:
    return {k: v for k, v in report.__dict__.items() if v}


def _daily_quota() -> int:
    tenant = getattr(connection, "tenant", None)
    plan_id = getattr(tenant, "plan_id", None)
    if plan_id is None:
        return 0
    return int(
        Plan.objects.filter(pk=plan_id).values_list("sms_daily_quota", flat=True).first() or 0
    )


_CLAIM_SQL = """
UPDATE clinical_remindermessage AS r
SET state = 'sending', claimed_at = %(now)s, attempts = r.attempts + 1, updated_at = %(now)s
FROM (
    SELECT id FROM clinical_remindermessage
    WHERE state IN ('pending', 'deferred') AND send_after <= %(now)s
    ORDER BY send_after
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS picked
WHERE r.id = picked.id
RETURNING r.id, r.appointment_id, r.kind, r.attempts
"""

_APPLY_SQL = """
UPDATE clinical_remindermessage AS r
SET state = v.state, reason = v.reason, send_after = COALESCE(v.send_after, r.send_after),
    phone = v.phone, body = v.body, attempts = r.attempts - v.undo_attempt,
    updated_at = %s
FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::timestamptz[], %s::text[], %s::text[],
            %s::int[]) AS v(id, state, reason, send_after, phone, body, undo_attempt)
WHERE r.id = v.id AND r.state = 'sending'
"""


def _claim(
    *, batch_size: int, rules: ReminderRules, limit: int, report: DispatchReport, now: datetime
) -> list[_Outgoing] | None:
    """Claim up to ``batch_size`` due rows and apply the rules to them, in one transaction that
    commits before any message leaves. None when nothing was due."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM_SQL, {"now": now, "limit": batch_size})
            claimed = cursor.fetchall()
        if not claimed:
            return None
        report.claimed += len(claimed)
        appointments = {
            a.pk: a
            for a in Appointment.all_objects.filter(
                pk__in={row[1] for row in claimed}
            ).select_related("patient", "facility")
        }
        opted_out = opted_out_phones(phones=(a.patient.phone for a in appointments.values()))
        decided: list[tuple[uuid.UUID, str, str, datetime | None, str, str, int]] = []
        sendable: list[tuple[uuid.UUID, str, str, int]] = []
        for row_id, appointment_id, kind, attempts in claimed:
            appointment = appointments[appointment_id]
            state, reason, send_after = _rule_outcome(
                appointment=appointment, rules=rules, opted_out=opted_out, now=now
            )
            if state == ReminderState.SENDING:
                body = render(
                    template=rules.template,
                    kind=kind,
                    starts_at=appointment.starts_at,
                    zone=appointment.facility.timezone,
                    patient_given_name=appointment.patient.given_name,
                    patient_family_name=appointment.patient.family_name,
                    facility_name=appointment.facility.name,
                )
                sendable.append((row_id, appointment.patient.phone, body, attempts))
            else:
                decided.append((row_id, state, reason, send_after, "", "", 1))
        granted = quota_reserve(day=now.date(), wanted=len(sendable), limit=limit)
        if granted < len(sendable):
            logger.warning(
                "SMS daily quota reached; reminders deferred to tomorrow",
                extra={"deferred": len(sendable) - granted, "quota": limit},
            )
        midnight = next_utc_midnight(now)
        for row_id, _phone, _body, _attempts in sendable[granted:]:
            decided.append((row_id, ReminderState.DEFERRED, "quota", midnight, "", "", 1))
        outgoing = [_Outgoing(*item) for item in sendable[:granted]]
        for item in outgoing:
            decided.append((item.id, ReminderState.SENDING, "", None, item.phone, item.body, 0))
        for _id, state, reason, *_ in decided:
            if state != ReminderState.SENDING:
                report.count(state, reason)
        with connection.cursor() as cursor:
            cursor.execute(_APPLY_SQL, [now, *(list(col) for col in zip(*decided, strict=True))])
    return outgoing


def _rule_outcome(
    *, appointment: Appointment, rules: ReminderRules, opted_out: set[str], now: datetime
) -> tuple[str, str, datetime | None]:
    if appointment.archived_at is not None or appointment.status != AppointmentStatus.SCHEDULED:
        return ReminderState.CANCELLED, f"appointment_{appointment.status}", None
    if not rules.enabled:
        return ReminderState.CANCELLED, "reminders_disabled", None
    if appointment.starts_at <= now:
        return ReminderState.SKIPPED, "expired", None
    patient = appointment.patient
    if not patient.phone:
        return ReminderState.SKIPPED, "no_phone", None
    if not patient.sms_opt_in:
        return ReminderState.SKIPPED, "no_consent", None
    if patient.phone in opted_out:
        return ReminderState.SKIPPED, "opted_out", None
    quiet_end = quiet_hours_end(
        at=now,
        zone=appointment.facility.timezone,
        quiet_start=rules.quiet_start,
        quiet_end=rules.quiet_end,
    )
    if quiet_end is not None:
        if quiet_end >= appointment.starts_at:
            return ReminderState.SKIPPED, "expired_in_quiet_hours", None
        return ReminderState.DEFERRED, "quiet_hours", quiet_end
    return ReminderState.SENDING, "", None


def _backoff(attempts: int, retry_after: float | None) -> timedelta:
    """Exponential backoff with full jitter, never sooner than the provider's Retry-After."""
    base = float(_conf("REMINDER_RETRY_BASE_SECONDS", 30))
    cap = float(_conf("REMINDER_RETRY_MAX_SECONDS", 3600))
    delay = random.uniform(0, min(cap, base * 2 ** max(attempts - 1, 0)))  # noqa: S311
    return timedelta(seconds=max(delay, retry_after or 0.0))


def _status_callback(row_id: uuid.UUID) -> str | None:
    if not _conf("NOTIFY_STATUS_CALLBACKS", False):
        return None
    tenant = getattr(connection, "tenant", None)
    slug = getattr(tenant, "slug", "")
    if not slug:
        return None
    scheme = _conf("NOTIFY_CALLBACK_SCHEME", "https")
    return (
        f"{scheme}://{tenant_host(slug)}/api/v1/notify/twilio/status/"
        f"?ref={REFERENCE_PREFIX}{row_id}"
    )


def _send(*, batch: list[_Outgoing], gateway: Gateway, report: DispatchReport) -> bool:
    """Send a claimed batch, recording outcomes every few messages. False: stop for now (the
    provider is throttling us); the unsent rest of the batch goes back to pending."""
    flush_every = int(_conf("REMINDER_FLUSH_EVERY", 50))
    max_attempts = int(_conf("REMINDER_MAX_ATTEMPTS", 5))
    outcomes: list[_Outcome] = []
    now = timezone.now
    for index, item in enumerate(batch):
        try:
            result = gateway.send(
                to=item.phone, body=item.body, status_callback=_status_callback(item.id)
            )
        except GatewayError as error:
            outcome = _failure(item=item, error=error, max_attempts=max_attempts, now=now())
            outcomes.append(outcome)
            if error.kind == "transient" and error.retry_after is not None:
                rest = batch[index + 1 :]
                _release(rest=rest, until=outcome.send_after or now())
                _flush(outcomes, report)
                return False
        else:
            outcomes.append(
                _Outcome(
                    id=item.id,
                    state=ReminderState.SENT,
                    provider_sid=result.provider_sid,
                    provider_status=result.status,
                )
            )
        if len(outcomes) >= flush_every:
            _flush(outcomes, report)
            outcomes = []
    _flush(outcomes, report)
    return True


def _failure(*, item: _Outgoing, error: GatewayError, max_attempts: int, now: datetime) -> _Outcome:
    code = error.code[:20]
    if error.kind == "permanent":
        if error.code in RECIPIENT_UNSUBSCRIBED:
            opt_out_record(phone=item.phone, keyword="carrier", source="provider_error")
        return _Outcome(item.id, ReminderState.FAILED, f"provider_rejected:{code}", error_code=code)
    if error.kind == "ambiguous":
        return _Outcome(item.id, ReminderState.UNKNOWN, f"ambiguous:{code}", error_code=code)
    if item.attempts >= max_attempts:
        return _Outcome(item.id, ReminderState.FAILED, "retries_exhausted", error_code=code)
    return _Outcome(
        item.id,
        ReminderState.PENDING,
        f"retry:{code}",
        error_code=code,
        send_after=now + _backoff(item.attempts, error.retry_after),
    )


def _release(*, rest: list[_Outgoing], until: datetime) -> None:
    """Rows claimed but never attempted: back to pending, attempt and quota given back."""
    if not rest:
        return
    now = timezone.now()
    with transaction.atomic():
        released = ReminderMessage.objects.filter(
            pk__in=[item.id for item in rest], state=ReminderState.SENDING
        ).update(
            state=ReminderState.PENDING,
            reason="provider_throttled",
            send_after=until,
            attempts=F("attempts") - 1,
            updated_at=now,
        )
        quota_release(day=now.date(), count=released)


_RECORD_SQL = """
UPDATE clinical_remindermessage AS r
SET state = v.state, reason = v.reason, provider_sid = v.provider_sid,
    provider_status = v.provider_status, error_code = v.error_code,
    send_after = COALESCE(v.send_after, r.send_after),
    sent_at = CASE WHEN v.state = 'sent' THEN %s ELSE r.sent_at END,
    updated_at = %s
FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[],
            %s::timestamptz[]) AS v(id, state, reason, provider_sid, provider_status,
                                   error_code, send_after)
WHERE r.id = v.id AND r.state = 'sending'
"""


def _flush(outcomes: list[_Outcome], report: DispatchReport) -> None:
    """Record outcomes in one UPDATE (only rows still ``sending``: a reconciler or a status
    callback may have moved them) and one audit event for the messages sent."""
    if not outcomes:
        return
    now = timezone.now()
    columns = (
        [o.id for o in outcomes],
        [o.state for o in outcomes],
        [o.reason for o in outcomes],
        [o.provider_sid for o in outcomes],
        [o.provider_status for o in outcomes],
        [o.error_code for o in outcomes],
        [o.send_after for o in outcomes],
    )
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(_RECORD_SQL, [now, now, *columns])
        sent_ids = [o.id for o in outcomes if o.state == ReminderState.SENT]
        if sent_ids:
            audit_event_record(
                context=None,
                action="update",
                object_type="clinical.remindermessage",
                object_ids=sent_ids,
                changed_fields=["state", "provider_sid"],
            )
    for outcome in outcomes:
        report.count(outcome.state, outcome.reason.split(":")[0] if outcome.state != "sent" else "")


# --- reconciling rows whose outcome is not known -----------------------------------------------


def _reconcile(*, gateway: Gateway, report: DispatchReport, now: datetime) -> None:
    """Rows claimed by a worker that died (``sending`` for longer than a task may live) and rows
    with an ambiguous provider answer (``unknown``): ask the provider whether it has the
    message. Found -> sent. Not found -> pending again (it never left). Provider cannot say ->
    left ``unknown`` (never resent: at most once wins over at least once)."""
    stuck_after = timedelta(seconds=float(_conf("REMINDER_STUCK_AFTER_SECONDS", 600)))
    unknown_after = timedelta(seconds=float(_conf("REMINDER_RECONCILE_AFTER_SECONDS", 120)))
    with transaction.atomic():
        rows = list(
            ReminderMessage.objects.select_for_update(skip_locked=True)
            .filter(
                Q(state=ReminderState.SENDING, claimed_at__lt=now - stuck_after)
                | Q(state=ReminderState.UNKNOWN, claimed_at__lt=now - unknown_after)
            )
            .exclude(reason="unverifiable")
            .order_by("claimed_at")[: int(_conf("REMINDER_RECONCILE_BATCH", 50))]
        )
        for row in rows:
            if not gateway.can_lookup:
                row.state, row.reason = ReminderState.UNKNOWN, "unverifiable"
                report.count(ReminderState.UNKNOWN, "unverifiable")
            else:
                try:
                    since = (row.claimed_at or now) - timedelta(minutes=5)
                    sid = gateway.lookup(to=row.phone, body=row.body, since=since)
                except GatewayError as error:
                    logger.warning("reminder reconcile lookup failed: %s", error.code)
                    continue
                if sid:
                    row.state, row.reason, row.provider_sid = ReminderState.SENT, "reconciled", sid
                    row.sent_at = row.sent_at or now
                    report.reconciled_sent += 1
                else:
                    row.state, row.reason, row.send_after = (
                        ReminderState.PENDING,
                        "reconciled_not_sent",
                        now,
                    )
                    report.reconciled_resend += 1
            row.updated_at = now
            row.save(
                update_fields=[
                    "state",
                    "reason",
                    "provider_sid",
                    "sent_at",
                    "send_after",
                    "updated_at",
                ]
            )


# --- delivery receipts -------------------------------------------------------------------------

_RECEIPT_STATES = {
    "delivered": ReminderState.DELIVERED,
    "undelivered": ReminderState.FAILED,
    "failed": ReminderState.FAILED,
}


def reminder_receipt_apply(
    *, reference: str, provider_sid: str, status: str, error_code: str
) -> None:
    """A verified status callback (notify.services.delivery_receipt_record calls this): the
    provider id is recorded even if the create response was lost (the row is then ``sent``),
    and a final status (delivered / undelivered / failed) is applied."""
    if not reference.startswith(REFERENCE_PREFIX):
        return
    row_id = parse_uuid(reference.removeprefix(REFERENCE_PREFIX))
    if row_id is None:
        return
    now = timezone.now()
    in_flight = (ReminderState.SENDING, ReminderState.UNKNOWN)
    rows = ReminderMessage.objects.filter(pk=row_id)
    rows.filter(state__in=in_flight).update(
        state=ReminderState.SENT,
        reason="receipt",
        provider_sid=provider_sid[:64],
        sent_at=now,
        updated_at=now,
    )
    final = _RECEIPT_STATES.get(status)
    if final is None:
        rows.filter(state=ReminderState.SENT).update(provider_status=status[:20], updated_at=now)
        return
    changes: dict[str, Any] = {"state": final, "provider_status": status[:20], "updated_at": now}
    if final == ReminderState.DELIVERED:
        changes["delivered_at"] = now
    else:
        changes.update(reason=f"provider_{status}"[:64], error_code=error_code[:20])
    rows.filter(state=ReminderState.SENT).update(**changes)


# --- the tenant's settings (API and admin) -----------------------------------------------------

SETTINGS_FIELDS = ("enabled", "kinds", "template", "quiet_start", "quiet_end")


@dataclass(frozen=True)
class SettingsSaved:
    settings: ReminderSettings
    created: bool
    # Names only (never values), for the write's audit event.
    changed_fields: list[str]


@transaction.atomic
def reminder_settings_update(
    *,
    enabled: bool,
    kinds: Any,
    template: str,
    quiet_start: time_of_day,
    quiet_end: time_of_day,
    expected_version: int,
    actor: Any,
    now: datetime | None = None,
) -> SettingsSaved:
    """Replace the tenant's reminder settings if they are still at ``expected_version`` (0: never
    saved) — else 409 ``version_conflict``. Validated by ``rules.settings_problems``, the rules the
    admin form applies (400 with field errors). ``kinds`` is stored as parsed (two keys per kind).

    A change of ``kinds`` or ``enabled`` re-plans the open reminders of every scheduled future
    appointment in this transaction (``reminders_sync_for_appointments``: set-wise, four
    queries), so turning reminders off cancels what is pending and new offsets apply to
    appointments already booked. Template and quiet hours are read at send time.
    """
    require_tenant_schema()
    values: dict[str, Any] = {
        "enabled": enabled,
        "kinds": kinds,
        "template": template,
        "quiet_start": quiet_start,
        "quiet_end": quiet_end,
    }
    problems = settings_problems(values)
    if problems:
        raise ValidationError(problems)
    values["kinds"] = [
        {"kind": kind.kind, "minutes_before": kind.minutes_before} for kind in kinds_parse(kinds)
    ]
    existing = ReminderSettings.all_objects.select_for_update().filter(singleton=1).first()
    before = existing if existing is not None else ReminderSettings()
    changed = [name for name in SETTINGS_FIELDS if getattr(before, name) != values[name]]
    if existing is None:
        if expected_version != SETTINGS_NEVER_SAVED:
            raise version_conflict(sent=expected_version, current=SETTINGS_NEVER_SAVED)
        try:
            # A savepoint: the concurrent first save that won leaves this transaction usable.
            with transaction.atomic():
                saved = ReminderSettings.objects.create(
                    **values, created_by=actor, updated_by=actor
                )
        except IntegrityError:
            raise version_conflict(sent=expected_version, current=1) from None
    else:
        saved = versioned_update(
            instance=existing, expected_version=expected_version, changes=values, actor=actor
        )
    if "kinds" in changed or "enabled" in changed:
        now = now or timezone.now()
        upcoming = Appointment.objects.filter(
            status=AppointmentStatus.SCHEDULED, starts_at__gt=now
        ).values_list("pk", flat=True)
        reminders_sync_for_appointments(appointment_ids=list(upcoming), now=now)
    return SettingsSaved(settings=saved, created=existing is None, changed_fields=changed)
