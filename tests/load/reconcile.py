"""After the run: status accounting (no 5xx but the documented 503 window), every acknowledged
write present exactly once, no duplicates, no half-written rows, every due reminder sent exactly
once (the fake provider's counters against the outbox rows)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.load.run import Report
    from tests.load.seed import TenantSeed
    from tests.load.traffic import Attempt, Write
    from tests.notify.fake_twilio import FakeTwilio


def status_checks(report: Report, attempts: list[Attempt]) -> None:
    pg = report.faults.get("postgres")
    window = pg["allowed_503_window"] if pg else None

    def in_pg_window(attempt: Attempt) -> bool:
        """The request was in flight at some point between the stop and the recovery limit."""
        return (
            window is not None
            and attempt.started <= window[1]
            and attempt.started + attempt.seconds >= window[0]
        )

    allowed = [
        a
        for a in attempts
        if a.status == 503 and a.code == "service_unavailable" and in_pg_window(a)
    ]
    bad_5xx = [a for a in attempts if a.status >= 500 and a not in allowed]
    no_answer = [a for a in attempts if a.status == 0]
    report.writes["documented_503s"] = len(allowed)
    report.writes["answers_409_idempotency_key_in_use"] = sum(
        1 for a in attempts if a.code == "idempotency_key_in_use"
    )
    report.check(
        "zero 5xx outside the PostgreSQL restart window",
        not bad_5xx,
        f"{len(bad_5xx)} unexpected 5xx" + (
            ": " + ", ".join(sorted({f'{a.endpoint} {a.status} {a.code} t={a.started:.1f}' for a in bad_5xx})[:8])
            if bad_5xx else f"; {len(allowed)} documented 503 service_unavailable in the window"
        ),
    )  # fmt: skip
    report.check(
        "every request answered (no dropped connections)",
        not no_answer,
        f"{len(no_answer)} without an answer"
        + (f" at t={sorted({round(a.started) for a in no_answer})[:10]}" if no_answer else ""),
    )
    redis = report.faults.get("redis")
    if redis:
        lo, hi = redis["window"]
        during = [a for a in attempts if lo <= a.started <= hi]
        served = sum(1 for a in during if 200 <= a.status < 300)
        failed = sum(1 for a in during if a.status >= 500 or a.status == 0)
        slowest = max((a.seconds for a in during), default=0.0)
        redis.update(requests_during_outage=len(during), served_2xx=served,
                     failed_during_outage=failed, slowest_ms=round(slowest * 1000, 1))  # fmt: skip
        report.check(
            "Redis down: API keeps serving",
            served > 0 and failed == 0,
            f"{served}/{len(during)} 2xx while Redis was down, {failed} 5xx/no answer, "
            f"slowest {slowest * 1000:.0f} ms",
        )
        report.check(
            "Redis down: throttles fail open and it is logged",
            redis["throttle_fail_open_logged"],
            "warning 'Redis unreachable, serving requests unthrottled' in the web log"
            if redis["throttle_fail_open_logged"] else "no warning found in the web log",
        )  # fmt: skip
        report.check(
            "Redis back: Celery reconnects, reminders booked during the outage sent",
            redis["worker_alive_after"] and redis["reminders_sent_after_recovery_seconds"] is not None,
            f"worker alive={redis['worker_alive_after']}, every due reminder sent "
            f"{redis['reminders_sent_after_recovery_seconds']} s after Redis came back",
        )  # fmt: skip
    if pg:
        recovery = pg["recovery_seconds"]
        report.check(
            "PostgreSQL restart: fail fast with 503 service_unavailable",
            pg["probes_503_service_unavailable"] > 0 and not pg["probe_other_answers_during_outage"]
            and (pg["max_503_latency_ms"] or 0) < 3000,
            f"{pg['probes_503_service_unavailable']}/{pg['probes_during_outage']} probes 503, "
            f"other answers {pg['probe_other_answers_during_outage']}, slowest 503 "
            f"{pg['max_503_latency_ms']} ms",
        )  # fmt: skip
        push = pg["inflight_push"]
        acked = push["acknowledged_after_restart_seconds"]
        report.check(
            "PostgreSQL restart: a write cut off by it is acknowledged on retry within 5 s",
            acked is not None and acked <= 5.0,
            f"5,000-row push, claim committed before the stop: {push['claim_committed_before_stop']}, "
            f"answers {push['answers']}, acknowledged {acked} s after PostgreSQL was back",
        )  # fmt: skip
        report.check(
            "PostgreSQL restart: recovers within 5 s without restarting gunicorn",
            recovery is not None and recovery <= 5.0,
            f"first 200 {recovery} s after PostgreSQL accepted connections again",
        )


def write_checks(report: Report, writes: list[Write], seeds: list[TenantSeed]) -> None:
    from django_tenants.utils import schema_context

    from clinical.models import Appointment, Patient, ReminderMessage
    from farms.models import Observation
    from tests.load.run import db

    schema = {s.slug: s.schema for s in seeds}
    by_kind: dict[str, list[Write]] = defaultdict(list)
    for write in writes:
        if write.kind != "push":
            by_kind[write.kind].append(write)
    lost: list[str] = []
    duplicated: list[str] = []
    summary: dict[str, Any] = {}
    models: dict[str, tuple[Any, str]] = {
        "patient": (Patient.all_objects if hasattr(Patient, "all_objects") else Patient.objects, "mrn"),
        "appointment": (Appointment.objects, "reason"),
        "observation": (Observation.all_objects if hasattr(Observation, "all_objects") else Observation.objects, "text"),
    }  # fmt: skip
    for kind, items in by_kind.items():
        manager, tag_field = models[kind]
        found: dict[str, tuple[str, ...]] = {}
        counts: Counter[str] = Counter()
        for slug in schema:
            tags = [w.tag for w in items if w.tenant == slug]

            def load(
                slug: str = slug,
                tags: list[str] = tags,
                manager: Any = manager,
                column: str = tag_field,
            ) -> list[tuple[Any, str]]:
                with schema_context(schema[slug]):
                    rows = manager.filter(**{f"{column}__in": tags}).values_list("id", column)
                    return list(rows)

            for pk, tag in db(load):
                counts[f"{slug}:{tag}"] += 1
                found[f"{slug}:{tag}"] = (*found.get(f"{slug}:{tag}", ()), str(pk))
        acked = [w for w in items if w.acked]
        for w in acked:
            ids = found.get(f"{w.tenant}:{w.tag}", ())
            if w.object_id not in ids:
                lost.append(f"{kind} {w.tenant} {w.tag}")
        duplicated += [f"{kind} {key} x{n}" for key, n in counts.items() if n > 1]
        unacked = [w for w in items if not w.acked]
        summary[kind] = {
            "attempted": len(items),
            "acknowledged": len(acked),
            "not_acknowledged": len(unacked),
            "not_acknowledged_but_committed": sum(1 for w in unacked if f"{w.tenant}:{w.tag}" in found),
            "retried": sum(1 for w in items if w.attempts > 1),
            "replayed": sum(1 for w in acked if w.replayed),
            "final_statuses": dict(Counter(str(w.last_status) for w in unacked)),
            "slowest_with_retries_s": round(max((w.seconds for w in items), default=0.0), 2),
        }  # fmt: skip
    report.writes.update(summary)
    report.check("every acknowledged write exists", not lost,
                 f"{len(lost)} lost" + (f": {lost[:5]}" if lost else f" of {sum(s['acknowledged'] for s in summary.values())} acknowledged"))  # fmt: skip
    unacked_total = sum(s["not_acknowledged"] for s in summary.values())
    report.check(
        "every write acknowledged in the end (clients retry 503s with the same key)",
        unacked_total == 0,
        f"{unacked_total} never acknowledged: "
        + json.dumps({k: v["final_statuses"] for k, v in summary.items() if v["final_statuses"]}),
    )
    report.check("no duplicated writes (idempotency keys)", not duplicated,
                 f"{len(duplicated)} duplicated" + (f": {duplicated[:5]}" if duplicated else ""))  # fmt: skip

    # Half-written: an appointment and its reminder outbox rows commit together.
    def orphans() -> int:
        total = 0
        for name in schema.values():
            with schema_context(name):
                with_reminders = ReminderMessage.objects.values("appointment_id")
                total += (
                    Appointment.objects.filter(reason__startswith="load")
                    .exclude(id__in=with_reminders)
                    .count()
                )
        return total

    missing = db(orphans)
    report.check("no half-written rows (appointment without its reminder outbox)", missing == 0,
                 f"{missing} appointments without reminder rows")  # fmt: skip


def reminder_checks(
    report: Report, seeds: list[TenantSeed], fake: FakeTwilio, due_booked: int
) -> None:
    from django.utils import timezone
    from django_tenants.utils import schema_context

    from clinical.models import ReminderMessage
    from tests.load.run import DONE_STATES, db

    def load() -> list[tuple[str, str, str]]:
        rows: list[tuple[str, str, str]] = []
        for seed in seeds:
            with schema_context(seed.schema):
                rows += list(
                    ReminderMessage.objects.filter(due_at__lte=timezone.now()).values_list(
                        "state", "provider_sid", "reason"
                    )
                )
        return rows

    rows = db(load)
    stats = fake.stats()
    sids = [sid for state, sid, _ in rows if state in DONE_STATES]
    fake_sids = {m.sid for m in fake.messages}
    report.reminders.update(
        {
            "due_booked": due_booked,
            "due_rows": len(rows),
            "states": dict(Counter(state for state, _, _ in rows)),
            "reasons": dict(Counter(reason for _, _, reason in rows if reason)),
            "provider": stats,
        }
    )
    report.check(
        "every due reminder sent (sent count = due count)",
        len(rows) == due_booked and len(sids) == len(rows) and stats["messages"] == len(rows),
        f"{due_booked} due bookings, {len(rows)} due rows, {len(sids)} sent, "
        f"{stats['messages']} messages at the provider",
    )
    report.check(
        "exactly once at the provider (duplicates = 0, every sid matched)",
        stats["duplicates"] == 0 and len(set(sids)) == len(sids) and set(sids) == fake_sids,
        f"duplicates {stats['duplicates']}, create requests {stats['create_requests']}, "
        f"{len(set(sids) & fake_sids)} of {len(fake_sids)} provider messages matched to rows",
    )
    worker = report.faults.get("worker")
    if worker:
        reconciled = report.reminders["reasons"].get("reconciled", 0)
        report.check(
            "worker SIGKILLed mid-send: the in-flight message reconciled, not resent",
            worker["sending_at_kill"] > 0 and reconciled >= 1 and stats["duplicates"] == 0
            and stats["create_requests"] == stats["messages"],
            f"{worker['sending_at_kill']} rows 'sending' at the kill, {reconciled} reconciled with "
            f"the provider, {stats['create_requests']} create requests for {stats['messages']} "
            "messages",
        )  # fmt: skip
