"""SMS reminder dispatch throughput: 10,000 due reminders across 10 tenants delivered by ONE
Celery worker process (solo pool, console backend with output off), started by the beat sweep's
task code. Reports messages per second, end-to-end lag (due -> recorded as sent) and duplicates.

Target (issue 5): >= 500 messages/s per worker process, zero duplicates.

    python -m tests.benchmarks.bench_reminders --output result.json
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from datetime import date, timedelta
from typing import Any

from tests.benchmarks.common import (
    Result,
    bench_database,
    django_setup,
    migrate_public_schema,
    output_path,
    pass_fail,
    say,
    summarize,
)
from tests.benchmarks.serving import celery_worker

TENANTS = 10
PER_TENANT = 1000
TARGET_PER_SECOND = 500.0
TIMEOUT_SECONDS = 300.0


def seed(slugs: list[str]) -> None:
    from datetime import time as clock

    from django.utils import timezone
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from accounts.roles import Role
    from clinical.models import (
        Appointment,
        Facility,
        Patient,
        ReminderMessage,
        ReminderSettings,
    )
    from tenants.models import Plan
    from tenants.services import tenant_provision

    now = timezone.now()
    for index, slug in enumerate(slugs):
        tenant = tenant_provision(
            slug=slug, name=f"Bench {slug}", kind="clinic",
            admin_email=f"admin@{slug}.test", admin_password="Bench-reminders-2026",
        ).tenant  # fmt: skip
        Plan.objects.filter(pk=tenant.plan_id).update(sms_daily_quota=10**7)
        with tenant_context(tenant):
            ReminderSettings.objects.create(quiet_start=clock(0), quiet_end=clock(0))
            facility = Facility.objects.create(
                name=f"Clinic {slug}", code="C1", timezone="Europe/Berlin"
            )
            doctor = User.objects.create(
                email=f"doc@{slug}.test", role=Role.CLINICIAN, is_active=True
            )
            patients = Patient.objects.bulk_create(
                Patient(
                    facility=facility, mrn=f"M{i}", given_name=f"Pat{i}", family_name="Bench",
                    birth_date=date(1980, 1, 1), phone=f"+4915{index:02d}{i:07d}", sms_opt_in=True,
                )
                for i in range(PER_TENANT)
            )  # fmt: skip
            appointments = Appointment.objects.bulk_create(
                Appointment(
                    patient=p, clinician=doctor, facility=facility,
                    starts_at=now + timedelta(hours=3, minutes=30 * i),
                    ends_at=now + timedelta(hours=3, minutes=30 * i + 20),
                )
                for i, p in enumerate(patients)
            )  # fmt: skip
            ReminderMessage.objects.bulk_create(
                ReminderMessage(
                    appointment=a, kind="two_hours", due_at=a.starts_at - timedelta(hours=2),
                    send_after=now + timedelta(days=1),  # due only when the clock starts
                )
                for a in appointments
            )  # fmt: skip
        say(f"seeded {slug}: {PER_TENANT} reminders")


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="reminders", details={"tenants": TENANTS, "per_tenant": PER_TENANT})
    with bench_database("reminders"):
        os.environ.setdefault("DEBUG", "false")
        django_setup("settings.dev")
        from django.conf import settings
        from django.db import connections
        from django.utils import timezone
        from django_tenants.utils import tenant_context

        from apikit.tenancy import activate_public
        from audit.models import AuditEvent
        from clinical.models import ReminderMessage
        from clinical.tasks import reminders_sweep
        from tenants.models import Tenant
        from tenants.services import template_schema_ensure

        say("migrating and seeding 10 tenants x 1,000 due reminders (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        slugs = [f"rem{i}" for i in range(TENANTS)]
        seed(slugs)
        tenants = list(Tenant.objects.filter(slug__in=slugs))
        queue = f"bench-sms-{uuid.uuid4().hex[:8]}"
        settings.CELERY_SMS_QUEUE = queue
        log = output.with_suffix(".worker.log")
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "settings.dev",
            "CELERY_SMS_QUEUE": queue,
            "NOTIFY_SMS_BACKEND": "console",
            "NOTIFY_CONSOLE_OUTPUT": "null",
            "LOG_LEVEL": "WARNING",
            "REMINDER_BATCH_SIZE": "500",
        }
        connections.close_all()
        log.parent.mkdir(parents=True, exist_ok=True)
        with celery_worker(queue=queue, log=log, env=env, pool="solo"):
            start = timezone.now()
            for tenant in tenants:  # every reminder becomes due now
                with tenant_context(tenant):
                    ReminderMessage.objects.update(send_after=start)
            activate_public()
            started = time.perf_counter()
            reminders_sweep()  # what beat runs: one dispatch task per tenant with due rows
            total = TENANTS * PER_TENANT
            while True:
                sent = 0
                for tenant in tenants:
                    with tenant_context(tenant):
                        sent += ReminderMessage.objects.filter(state="sent").count()
                if sent >= total or time.perf_counter() - started > TIMEOUT_SECONDS:
                    break
                time.sleep(0.25)
            wall = time.perf_counter() - started
        lags: list[float] = []
        first_claim: Any = None
        last_sent: Any = None
        ids_audited: list[uuid.UUID] = []
        attempts_over_one = 0
        for tenant in tenants:
            with tenant_context(tenant):
                for claimed, sent_at, attempts in ReminderMessage.objects.filter(
                    state="sent"
                ).values_list("claimed_at", "sent_at", "attempts"):
                    lags.append((sent_at - start).total_seconds())  # type: ignore[operator]
                    first_claim = claimed if first_claim is None else min(first_claim, claimed)
                    last_sent = sent_at if last_sent is None else max(last_sent, sent_at)
                    attempts_over_one += attempts > 1
                for ids in AuditEvent.objects.filter(
                    object_type="clinical.remindermessage"
                ).values_list("object_ids", flat=True):
                    ids_audited.extend(ids)
        sent = len(lags)
        duplicates = len(ids_audited) - len(set(ids_audited)) + attempts_over_one
        busy = (last_sent - first_claim).total_seconds() if sent else float("nan")
        per_second = sent / max(lags) if sent else 0.0
        lag = summarize(lags)
        say(
            f"{sent}/{total} sent in {max(lags) if lags else wall:.2f} s after the sweep: "
            f"{per_second:.0f} msg/s end to end, {sent / busy:.0f} msg/s from first claim to last "
            f"send; lag p50 {lag.p50:.2f} s p95 {lag.p95:.2f} s max {lag.max:.2f} s; "
            f"duplicates {duplicates}"
        )
        result.add("sent", sent, "messages", target=str(total), status=pass_fail(sent == total))
        result.add(
            "throughput (sweep -> last send)", round(per_second, 1), "msg/s",
            target=f">= {TARGET_PER_SECOND:.0f}", status=pass_fail(per_second >= TARGET_PER_SECOND),
        )  # fmt: skip
        result.add("throughput (first claim -> last send)", round(sent / busy, 1), "msg/s")
        result.add("lag p50 (due -> sent)", round(lag.p50, 3), "s")
        result.add("lag p95 (due -> sent)", round(lag.p95, 3), "s")
        result.add("lag max (due -> sent)", round(lag.max, 3), "s")
        result.add(
            "duplicates", duplicates, "messages", target="0", status=pass_fail(duplicates == 0)
        )
    result.write(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
