"""Reminder delivery through the real stack: a Celery worker process (solo pool) consuming a
queue of this run's own on the real Redis broker, reading this run's test database, sending
over HTTP to a fake Twilio server in this process.

The data lives in two throwaway tenants provisioned and committed for the module (the worker
only sees committed rows), dropped afterwards; alpha and beta are never touched."""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.roles import Role
from apikit.tenancy import activate_public
from clinical import services
from clinical.models import Facility, Patient, ReminderMessage, ReminderSettings
from clinical.tasks import reminders_sweep
from tenants.models import Tenant
from tenants.services import tenant_drop, tenant_provision
from tests.celery_worker import CeleryWorker
from tests.committed import committed
from tests.notify.fake_twilio import FakeTwilio

pytestmark = [pytest.mark.worker, pytest.mark.django_db]

ROOT = Path(__file__).resolve().parents[2]
SLUGS = ("rem-a", "rem-b")
ACCOUNT, TOKEN = "ACworker", "worker-token"
_slots = {slug: itertools.count() for slug in SLUGS}


def _drop() -> None:
    activate_public()
    for slug in SLUGS:
        if Tenant.objects.filter(slug=slug).exists():
            tenant_drop(slug=slug)


def _seed() -> None:
    _drop()
    for slug in SLUGS:
        tenant = tenant_provision(
            slug=slug,
            name=f"{slug} org",
            kind="clinic",
            admin_email=f"admin@{slug}.example",
            admin_password="rem-Password-1",
        ).tenant
        with tenant_context(tenant):
            User.objects.create(email="doc@x.example", role=Role.CLINICIAN, is_active=True)
            Facility.objects.create(name=f"Clinic {slug}", code="C1", timezone="Europe/Berlin")
            # No quiet hours: the test must pass at any time of day.
            ReminderSettings.objects.create(quiet_start=clock(0), quiet_end=clock(0))


@pytest.fixture(scope="module")
def tenants(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Tenant]]:
    with django_db_blocker.unblock():
        committed(_seed)
        try:
            yield {slug: Tenant.objects.get(slug=slug) for slug in SLUGS}
        finally:
            committed(_drop)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    server = FakeTwilio(account_sid=ACCOUNT, auth_token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def queue(settings: Any) -> str:
    name = f"test-sms-{uuid.uuid4().hex[:8]}"
    settings.CELERY_SMS_QUEUE = name
    return name


class Worker(CeleryWorker):
    """The worker with the fake Twilio as its SMS provider."""

    def __init__(self, *, queue: str, fake: FakeTwilio, log: Path) -> None:
        super().__init__(
            queue=queue,
            log=log,
            env={
                "CELERY_SMS_QUEUE": queue,
                "NOTIFY_SMS_BACKEND": "twilio",
                "TWILIO_API_BASE": fake.base_url,
                "TWILIO_ACCOUNT_SID": ACCOUNT,
                "TWILIO_AUTH_TOKEN": TOKEN,
                "TWILIO_FROM_NUMBER": "+15005550006",
                "TWILIO_READ_TIMEOUT_SECONDS": "60",
                "REMINDER_STUCK_AFTER_SECONDS": "1",
            },
        )


def wait_for(check: Callable[[], bool], *, what: str, log: Path, seconds: float = 45) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(
        f"timed out waiting for {what}:\n{log.read_text(errors='replace')[-4000:]}"
    )


def book(tenant: Tenant, *, phone: str) -> uuid.UUID:
    """Commit an appointment starting in an hour: its reminder is due now, and the booking's
    transaction.on_commit enqueues the dispatch task, carrying this tenant's schema."""

    def work() -> uuid.UUID:
        with tenant_context(tenant):
            facility = Facility.objects.get()
            patient = Patient.objects.create(
                facility=facility, mrn=f"M{phone[-6:]}", given_name="Pat", family_name="Ient",
                birth_date=date(1990, 1, 1), phone=phone, sms_opt_in=True,
            )  # fmt: skip
            # Before the two-hour mark (due now), never overlapping the clinician's others.
            start = timezone.now() + timedelta(hours=1, minutes=16 * next(_slots[tenant.slug]))
            appointment = services.appointment_create(
                patient=patient, clinician=User.objects.get(email="doc@x.example"),
                facility=facility, starts_at=start, ends_at=start + timedelta(minutes=15),
                actor=None,
            )  # fmt: skip
            return appointment.reminders.get().pk

    return committed(work)


def states(tenant: Tenant) -> dict[uuid.UUID, tuple[str, str]]:
    with tenant_context(tenant):
        return {
            pk: (state, sid)
            for pk, state, sid in ReminderMessage.objects.values_list("pk", "state", "provider_sid")
        }


def test_interleaved_tenants_on_one_worker_each_write_their_own_rows(
    tenants: dict[str, Tenant], fake: FakeTwilio, queue: str, tmp_path: Path
) -> None:
    worker = Worker(queue=queue, fake=fake, log=tmp_path / "worker.log").start()
    try:
        a, b = tenants["rem-a"], tenants["rem-b"]
        made = {
            "rem-a": [book(a, phone="+4915112300001"), book(a, phone="+4915112300003")],
            "rem-b": [book(b, phone="+4915112300002"), book(b, phone="+4915112300004")],
        }
        wait_for(lambda: len(fake.messages) == 4, what="4 messages", log=worker.log)
        wait_for(
            lambda: all(s == "sent" for t in (a, b) for s, _ in states(t).values()),
            what="rows sent",
            log=worker.log,
        )
    finally:
        worker.stop()
    by_sid = {m.sid: m for m in fake.messages}
    for slug, tenant in tenants.items():
        rows = states(tenant)
        assert set(rows) == set(made[slug])  # each tenant holds exactly its own rows
        for _state, sid in rows.values():
            # The text was rendered in the tenant's own schema (its facility's name).
            assert f"Clinic {slug}" in by_sid[sid].body
    assert fake.stats()["duplicates"] == 0
    assert fake.create_requests == 4


def test_worker_killed_mid_send_delivers_exactly_once_after_restart(
    tenants: dict[str, Tenant], fake: FakeTwilio, queue: str, tmp_path: Path, settings: Any
) -> None:
    settings.REMINDER_STUCK_AFTER_SECONDS = 1  # as the workers have it (in production: 600)
    tenant = tenants["rem-a"]
    log = tmp_path / "worker.log"
    # The provider accepts the message, then stalls before answering: the worker is killed
    # while it waits, so the row stays "sending" with no provider id.
    fake.script({"delay": 20, "record": True})
    first = Worker(queue=queue, fake=fake, log=log).start()
    row_id = book(tenant, phone="+4915112300009")
    try:
        wait_for(lambda: fake.create_requests == 1, what="the send to start", log=log)
        first.kill()
    finally:
        first.stop()
    assert states(tenant)[row_id] == ("sending", "")

    second = Worker(queue=queue, fake=fake, log=log).start()
    try:
        time.sleep(1.2)  # REMINDER_STUCK_AFTER_SECONDS=1 for the worker
        # Beat's sweep finds the stuck row (run committed: its row locks must not outlive it).
        assert tenant.schema_name in committed(reminders_sweep)
        wait_for(lambda: states(tenant)[row_id][0] == "sent", what="reconciled", log=log)
    finally:
        second.stop()
    with tenant_context(tenant):
        row = ReminderMessage.objects.get(pk=row_id)
    assert (row.reason, row.provider_sid) == ("reconciled", fake.messages[0].sid)
    # One create request at the provider, one message: delivered exactly once.
    assert (fake.create_requests, len(fake.messages)) == (1, 1)
    assert fake.list_requests >= 1
