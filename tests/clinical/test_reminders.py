"""Reminder outbox and delivery, in process: rules, exactly-once claims, provider errors against
a real HTTP server speaking Twilio's API (tests.notify.fake_twilio), receipts and the API.
The worker-process tests are in tests/notify/test_worker.py."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from apikit.tenancy import TenantRequiredError
from audit.models import AuditEvent
from clinical import services
from clinical.models import Appointment, ReminderMessage, ReminderSettings
from clinical.reminders import reminders_dispatch
from clinical.reminders.rules import quiet_hours_end
from notify.gateway import SendResult, TwilioGateway
from notify.models import OptOut
from tests.clinical.conftest import Clinic, make_patient
from tests.conftest import TenantWorld, login
from tests.notify.fake_twilio import FakeTwilio
from tests.query_budget import assert_constant_queries

pytestmark = pytest.mark.django_db


@dataclass
class CountingGateway:
    """An in-memory gateway: counts and keeps what it was asked to send."""

    name: str = "counting"
    can_lookup: bool = True
    sent: list[tuple[str, str]] = field(default_factory=list)

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        self.sent.append((to, body))
        return SendResult(provider_sid=f"SM{len(self.sent)}", status="queued")

    def lookup(self, *, to: str, body: str, since: datetime) -> str | None:
        return next((f"SM{i + 1}" for i, item in enumerate(self.sent) if item == (to, body)), None)


@pytest.fixture
def fake_twilio() -> Iterator[FakeTwilio]:
    server = FakeTwilio(account_sid="ACtest", auth_token="tok").start()
    yield server
    server.stop()


def twilio(server: FakeTwilio, *, read_timeout: float = 5.0) -> TwilioGateway:
    return TwilioGateway(
        api_base=server.base_url,
        account_sid="ACtest",
        auth_token="tok",
        from_number="+15005550006",
        read_timeout=read_timeout,
    )


def book(clinic: Clinic, *, hours_ahead: float, phone: str = "+14155550101", consent: bool = True):
    """A patient at the New York facility (F2) with an appointment ``hours_ahead`` from now."""
    patient = make_patient(
        facility=clinic.f2,
        mrn=f"R-{hours_ahead}-{phone[-4:]}",
        phone=phone,
        sms_opt_in=consent,
    )
    start = timezone.now().replace(microsecond=0) + timedelta(hours=hours_ahead)
    return services.appointment_create(
        patient=patient,
        clinician=clinic.clinician,
        facility=clinic.f2,
        starts_at=start,
        ends_at=start + timedelta(minutes=30),
        actor=None,
    )


def rows(appointment: Appointment) -> list[tuple[str, str, str]]:
    return [
        (r.kind, r.state, r.reason)
        for r in ReminderMessage.objects.filter(appointment=appointment).order_by("due_at")
    ]


@pytest.fixture
def daytime(clinic: Clinic) -> None:
    """No quiet hours, whatever the time of day the suite runs at."""
    with tenant_context(clinic.world.tenant):
        ReminderSettings.objects.update_or_create(
            singleton=1, defaults={"quiet_start": time(0, 0), "quiet_end": time(0, 0)}
        )


# --- the outbox follows the appointment -----------------------------------------------------


def test_booking_creates_one_row_per_kind_in_the_same_transaction(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=48)
        assert rows(appointment) == [("day_before", "pending", ""), ("two_hours", "pending", "")]
        due = {r.kind: r.due_at for r in appointment.reminders.all()}
        assert due["day_before"] == appointment.starts_at - timedelta(hours=24)
        assert due["two_hours"] == appointment.starts_at - timedelta(hours=2)

        made: list[Appointment] = []

        def book_then_fail() -> None:
            with transaction.atomic():
                made.append(book(clinic, hours_ahead=72, phone="+14155550199"))
                assert ReminderMessage.objects.filter(appointment=made[0]).count() == 2
                raise RuntimeError

        with pytest.raises(RuntimeError):
            book_then_fail()
        assert ReminderMessage.objects.filter(appointment_id=made[0].pk).count() == 0


def test_late_booking_gets_the_latest_passed_reminder_and_enqueues_it_on_commit(
    clinic: Clinic, django_capture_on_commit_callbacks: Any
) -> None:
    with tenant_context(clinic.world.tenant):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            appointment = book(clinic, hours_ahead=1)
        assert rows(appointment) == [("two_hours", "pending", "")]
        assert len(callbacks) == 1
        with django_capture_on_commit_callbacks(execute=False) as later:
            book(clinic, hours_ahead=48, phone="+14155550102")
        assert later == []  # nothing due now: the beat sweep delivers at the due time


def test_reschedule_regenerates_and_cancel_cancels(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=48)
        moved = services.appointment_update(
            appointment=appointment,
            expected_version=appointment.version,
            changes={
                "starts_at": appointment.starts_at + timedelta(days=1),
                "ends_at": appointment.ends_at + timedelta(days=1),
            },
            actor=None,
        )
        assert sorted(rows(moved)) == sorted(
            [
                ("day_before", "cancelled", "rescheduled"),
                ("two_hours", "cancelled", "rescheduled"),
                ("day_before", "pending", ""),
                ("two_hours", "pending", ""),
            ]
        )
        back = services.appointment_update(
            appointment=moved,
            expected_version=moved.version,
            changes={"starts_at": appointment.starts_at, "ends_at": appointment.ends_at},
            actor=None,
        )
        # Moving back revives the original rows (the unique key) instead of adding more.
        assert ReminderMessage.objects.filter(appointment=back).count() == 4
        assert ReminderMessage.objects.filter(appointment=back, state="pending").count() == 2
        cancelled = services.appointment_transition(
            appointment=back, action="cancel", expected_version=back.version, actor=None
        )
        assert {state for _, state, _ in rows(cancelled)} == {"cancelled"}
        assert ReminderMessage.objects.filter(reason="appointment_cancelled").count() == 2


def test_sync_is_set_wise(clinic: Clinic, django_assert_num_queries: Any) -> None:
    from clinical.reminders import reminders_sync_for_appointments

    with tenant_context(clinic.world.tenant):
        appointments = [
            book(clinic, hours_ahead=30 + i, phone=f"+1415555{i:04d}") for i in range(6)
        ]
        ReminderMessage.objects.all().delete()
        ids = [a.pk for a in appointments]
        # settings, appointments, open rows, one INSERT: whatever the number of appointments.
        with django_assert_num_queries(4):
            reminders_sync_for_appointments(appointment_ids=ids)
        assert ReminderMessage.objects.filter(state="pending").count() == 12


# --- delivery rules -----------------------------------------------------------------------------


def _due_now(appointment: Appointment) -> None:
    ReminderMessage.objects.filter(appointment=appointment).update(send_after=timezone.now())


def test_dispatch_sends_once_even_when_run_twice(clinic: Clinic, daytime: None) -> None:
    gateway = CountingGateway()
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=1)
        first = reminders_dispatch(gateway=gateway)
        second = reminders_dispatch(gateway=gateway)  # the same task delivered again
        assert (first.sent, second.sent, second.claimed) == (1, 0, 0)
        assert len(gateway.sent) == 1
        row = appointment.reminders.get()
        assert (row.state, row.provider_sid, row.attempts) == ("sent", "SM1", 1)
        assert clinic.f2.name in row.body
        # The facility's local time is in the text.
        local = appointment.starts_at.astimezone(
            __import__("zoneinfo").ZoneInfo("America/New_York")
        )
        assert local.strftime("%H:%M") in row.body
        event = AuditEvent.objects.get(object_type="clinical.remindermessage")
        assert event.object_ids == [row.pk]


def test_consent_and_opt_out_are_checked_at_send_time(clinic: Clinic, daytime: None) -> None:
    gateway = CountingGateway()
    with tenant_context(clinic.world.tenant):
        no_consent = book(clinic, hours_ahead=1, phone="+14155550111", consent=False)
        opted_out = book(clinic, hours_ahead=1.5, phone="+14155550112")
        OptOut.objects.create(phone="+14155550112", opted_out_at=timezone.now())
        reminders_dispatch(gateway=gateway)
        assert rows(no_consent) == [("two_hours", "skipped", "no_consent")]
        assert rows(opted_out) == [("two_hours", "skipped", "opted_out")]
        assert gateway.sent == []


def test_quiet_hours_defer_in_the_facility_zone_across_dst() -> None:
    ny, quiet = "America/New_York", {"quiet_start": time(21), "quiet_end": time(7)}
    # 2031-03-09: clocks jump 02:00 -> 03:00. 00:30 EST is quiet; 07:00 is EDT (UTC-4).
    assert quiet_hours_end(at=datetime(2031, 3, 9, 5, 30, tzinfo=UTC), zone=ny, **quiet) == (
        datetime(2031, 3, 9, 11, 0, tzinfo=UTC)
    )
    # 2031-11-02: clocks fall back 02:00 -> 01:00. 00:30 EDT is quiet; 07:00 is EST (UTC-5).
    assert quiet_hours_end(at=datetime(2031, 11, 2, 4, 30, tzinfo=UTC), zone=ny, **quiet) == (
        datetime(2031, 11, 2, 12, 0, tzinfo=UTC)
    )
    # 22:00 the evening before the switch: the window crosses midnight and the DST change.
    assert quiet_hours_end(at=datetime(2031, 3, 9, 3, 0, tzinfo=UTC), zone=ny, **quiet) == (
        datetime(2031, 3, 9, 11, 0, tzinfo=UTC)
    )
    assert quiet_hours_end(at=datetime(2031, 3, 9, 15, 0, tzinfo=UTC), zone=ny, **quiet) is None


def test_dispatch_in_quiet_hours_defers_to_local_morning_on_dst_day(clinic: Clinic) -> None:
    gateway = CountingGateway()
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=24 * 400)
        start = datetime(2031, 3, 9, 14, 0, tzinfo=UTC)  # 10:00 EDT, the day clocks spring forward
        Appointment.objects.filter(pk=appointment.pk).update(
            starts_at=start, ends_at=start + timedelta(minutes=30)
        )
        ReminderMessage.objects.filter(appointment=appointment).update(
            send_after=datetime(2031, 3, 9, 5, 0, tzinfo=UTC)
        )
        now = datetime(2031, 3, 9, 5, 30, tzinfo=UTC)  # 00:30 EST
        report = reminders_dispatch(gateway=gateway, now=now)
        assert (report.deferred, gateway.sent) == (2, [])
        assert set(ReminderMessage.objects.values_list("state", "reason", "send_after")) == {
            ("deferred", "quiet_hours", datetime(2031, 3, 9, 11, 0, tzinfo=UTC))
        }
        later = reminders_dispatch(gateway=gateway, now=datetime(2031, 3, 9, 11, 0, tzinfo=UTC))
        assert (later.sent, len(gateway.sent)) == (2, 2)


def test_daily_quota_defers_the_rest_to_tomorrow(clinic: Clinic, daytime: None) -> None:
    plan = clinic.world.tenant.plan
    plan.sms_daily_quota = 1
    plan.save()
    gateway = CountingGateway()
    with tenant_context(clinic.world.tenant):
        first = book(clinic, hours_ahead=1, phone="+14155550121")
        second = book(clinic, hours_ahead=1.5, phone="+14155550122")
        report = reminders_dispatch(gateway=gateway)
        assert (report.sent, report.deferred, report.reasons) == (1, 1, {"quota": 1})
        states = sorted(rows(first) + rows(second))
        assert states == [("two_hours", "deferred", "quota"), ("two_hours", "sent", "")]
        deferred = ReminderMessage.objects.get(state="deferred")
        tomorrow = (timezone.now().astimezone(UTC) + timedelta(days=1)).date()
        assert deferred.send_after == datetime.combine(tomorrow, time(0), tzinfo=UTC)


# --- provider errors, over real HTTP --------------------------------------------------------------


def test_invalid_number_fails_without_retry(
    clinic: Clinic, daytime: None, fake_twilio: FakeTwilio
) -> None:
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=1)
        fake_twilio.script({"status": 400, "code": 21211, "message": "Invalid 'To'"})
        report = reminders_dispatch(gateway=twilio(fake_twilio))
        assert report.failed == 1
        assert rows(appointment) == [("two_hours", "failed", "provider_rejected:21211")]
        assert reminders_dispatch(gateway=twilio(fake_twilio)).claimed == 0
        assert fake_twilio.create_requests == 1


def test_429_is_retried_later_with_backoff(
    clinic: Clinic, daytime: None, fake_twilio: FakeTwilio
) -> None:
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=1)
        fake_twilio.script({"status": 429, "retry_after": 30})
        before = timezone.now()
        reminders_dispatch(gateway=twilio(fake_twilio))
        row = appointment.reminders.get()
        assert (row.state, row.reason, row.attempts) == ("pending", "retry:20429", 1)
        assert row.send_after >= before + timedelta(seconds=30)
        ReminderMessage.objects.filter(pk=row.pk).update(send_after=timezone.now())
        assert reminders_dispatch(gateway=twilio(fake_twilio)).sent == 1
        assert (fake_twilio.create_requests, len(fake_twilio.messages)) == (2, 1)


def test_server_error_is_reconciled_before_any_resend(
    clinic: Clinic, daytime: None, fake_twilio: FakeTwilio, settings: Any
) -> None:
    settings.REMINDER_RECONCILE_AFTER_SECONDS = 0
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=1)
        fake_twilio.script({"status": 500})  # not accepted, but we cannot know that
        reminders_dispatch(gateway=twilio(fake_twilio))
        assert rows(appointment) == [("two_hours", "unknown", "ambiguous:20500")]
        report = reminders_dispatch(gateway=twilio(fake_twilio))
        # The provider has no such message: back to pending and sent, once.
        assert (report.reconciled_resend, report.sent) == (1, 1)
        assert (fake_twilio.create_requests, len(fake_twilio.messages)) == (2, 1)
        assert fake_twilio.list_requests == 1


def test_read_timeout_after_acceptance_is_never_resent(
    clinic: Clinic, daytime: None, fake_twilio: FakeTwilio, settings: Any
) -> None:
    settings.REMINDER_RECONCILE_AFTER_SECONDS = 0
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=1)
        fake_twilio.script({"delay": 1.0, "record": True})
        reminders_dispatch(gateway=twilio(fake_twilio, read_timeout=0.2))
        assert rows(appointment) == [("two_hours", "unknown", "ambiguous:read_timeout")]
        report = reminders_dispatch(gateway=twilio(fake_twilio))
        assert report.reconciled_sent == 1
        row = appointment.reminders.get()
        assert (row.state, row.provider_sid) == ("sent", fake_twilio.messages[0].sid)
        assert fake_twilio.create_requests == 1


# --- fail closed ----------------------------------------------------------------------------------


def test_tenant_only_work_refuses_the_public_schema(alpha: TenantWorld) -> None:
    from clinical.tasks import reminders_dispatch_task

    with pytest.raises(TenantRequiredError, match="Reminder work"):
        reminders_dispatch(gateway=CountingGateway())
    # The task's base refuses before the body runs (the message says which task).
    with pytest.raises(TenantRequiredError, match=r"clinical\.reminders_dispatch"):
        reminders_dispatch_task()


# --- API ------------------------------------------------------------------------------------------


def test_reminder_list_for_tenant_admin_with_filters_and_isolation(
    clinic: Clinic, clinic_beta: Clinic, daytime: None
) -> None:
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=48)
    admin = login(clinic.world)
    response = admin.get("/api/v1/clinical/reminders/")
    assert response.status_code == 200, response.content
    assert {r["appointment"] for r in response.json()["results"]} == {str(appointment.pk)}
    only = admin.get("/api/v1/clinical/reminders/", {"kind": "two_hours", "state": "pending"})
    assert [r["kind"] for r in only.json()["results"]] == ["two_hours"]
    bad = admin.get("/api/v1/clinical/reminders/", {"state": "exploded"})
    assert (bad.status_code, bad.json()["error"]["code"]) == (400, "validation_error")
    # beta has rows with colliding facility ids, but not this appointment's reminders.
    assert login(clinic_beta.world).get("/api/v1/clinical/reminders/").json()["results"] == []
    from tests.conftest import CLINICIAN_EMAIL

    clinician = login(clinic.world, email=CLINICIAN_EMAIL)
    denied = clinician.get("/api/v1/clinical/reminders/")
    assert (denied.status_code, denied.json()["error"]["code"]) == (
        403,
        "permission_denied",
    )


def test_appointment_detail_shows_its_reminders(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=48)
    response = login(clinic.world).get(f"/api/v1/clinical/appointments/{appointment.pk}/")
    assert response.status_code == 200
    assert [(r["kind"], r["state"]) for r in response.json()["reminders"]] == [
        ("day_before", "pending"),
        ("two_hours", "pending"),
    ]


def test_reminder_list_query_count_is_constant(clinic: Clinic) -> None:
    admin = login(clinic.world)
    made: list[int] = [0]

    def add_rows(n: int) -> None:
        with tenant_context(clinic.world.tenant):
            for _ in range(n):
                made[0] += 1
                book(clinic, hours_ahead=1000 + made[0], phone=f"+1415556{made[0]:04d}")

    assert_constant_queries(
        fetch=lambda: admin.get("/api/v1/clinical/reminders/", {"page_size": 200}),
        add_rows=add_rows,
        small=1,
        large=10,
        expected_rows=lambda response: len(response.json()["results"]) // 2,
    )


@pytest.fixture
def broker_down() -> Iterator[None]:
    """The real Celery app pointed at a closed port (nothing listens on 127.0.0.1:1)."""
    from settings.celery_app import app

    original = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    app._pool = None
    app.amqp._producer_pool = None
    try:
        yield
    finally:
        app.conf.broker_url = original
        app._pool = None
        app.amqp._producer_pool = None


def test_a_booking_with_the_broker_down_commits_and_leaves_the_reminder_to_the_sweep(
    clinic: Clinic,
    broker_down: None,
    django_capture_on_commit_callbacks: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with tenant_context(clinic.world.tenant):
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            appointment = book(clinic, hours_ahead=1)
        assert len(callbacks) == 1
        callbacks[0]()  # what on_commit runs: must not raise
    assert "the beat sweep queues it" in caplog.text
    assert not [record for record in caplog.records if record.exc_info]
    with tenant_context(clinic.world.tenant):
        assert rows(appointment) == [("two_hours", "pending", "")]


@pytest.mark.parametrize("template", ["At {local_time:d}", "Hi {kind!x}", "{}", "{kind.upper}"])
def test_templates_that_only_fail_when_rendered_are_refused(template: str) -> None:
    from clinical.reminders.rules import template_check

    with pytest.raises(ValueError, match="template"):
        template_check(template)


def test_a_saved_broken_template_does_not_stop_the_tenants_reminders(
    clinic: Clinic, daytime: None, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = CountingGateway()
    with tenant_context(clinic.world.tenant):
        # Saved before the check refused conversions (a raw update skips validation).
        ReminderSettings.objects.update(template="Visit at {local_time:d}")
        appointment = book(clinic, hours_ahead=1)
        assert reminders_dispatch(gateway=gateway).sent == 1
        assert appointment.reminders.get().state == "sent"
    assert "reminder template unusable" in caplog.text
