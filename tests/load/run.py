"""Load and fault injection (issue 10 item 4): one command that builds a private stack, drives
mixed traffic for a bounded time, injects faults at fixed offsets, reconciles every write and
every due reminder, prints a report and writes JSON. Exit status 1 when a check fails.

    make load                                   # 60 s, all three faults
    make load LOAD_ARGS="--seconds 20 --faults redis"
    .venv/bin/python -m tests.load.run --seconds 60 --json load.json --keep-logs

Loopback only; bounded by --seconds and --max-requests; stops by itself. docs/reliability.md
describes each phase and the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from tests.load.stack import LoadStack, say, wait_until

T = TypeVar("T")
FAULTS = ("redis", "postgres", "worker")
# Where each fault starts, as a share of the traffic window (60 s: 8 s, 26 s, 39 s).
OFFSETS = {"redis": 0.13, "postgres": 0.43, "worker": 0.65}
POSTGRES_DOWN_SECONDS = 2.0
POSTGRES_RECOVERY_TARGET = 5.0
WORKER_SEND_DELAY = 0.2
DRAIN_SECONDS = 120.0
DONE_STATES = ("sent", "delivered")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    started_at: str
    seconds: float
    threads: int
    load_average_start: tuple[float, ...]
    load_average_end: tuple[float, ...] = ()
    throughput: float = 0.0
    total_requests: int = 0
    endpoints: list[dict[str, Any]] = field(default_factory=list)
    faults: dict[str, Any] = field(default_factory=dict)
    writes: dict[str, Any] = field(default_factory=dict)
    reminders: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append(Check(name, bool(ok), detail))

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="traffic window (default 60)")
    parser.add_argument("--threads", type=int, default=6, help="client threads (default 6)")
    parser.add_argument("--max-requests", type=int, default=50_000, help="hard cap on requests")
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help="comma list of redis,postgres,worker or 'none'"
    )
    parser.add_argument("--redis-down", type=float, default=10.0, help="seconds Redis is stopped")
    parser.add_argument(
        "--reminders", type=int, default=30, help="due reminders per tenant per batch"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the report here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the work dir (server logs)")
    args = parser.parse_args(argv)
    faults = (
        [] if args.faults == "none" else [f.strip() for f in args.faults.split(",") if f.strip()]
    )
    unknown = set(faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown fault(s): {', '.join(sorted(unknown))}")
    args.faults = faults
    if args.seconds <= 0 or args.seconds > 600 or not 1 <= args.threads <= 32:
        parser.error("--seconds must be in (0, 600] and --threads in [1, 32]")
    return args


# --- database access from the harness (it survives the PostgreSQL restart too) -----------------


def db(work: Callable[[], T], *, attempts: int = 40) -> T:
    from django.db import Error, connections

    for attempt in range(attempts):
        try:
            return work()
        except Error:
            connections.close_all()
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


def reminder_states(schemas: list[str]) -> dict[str, int]:
    from django.db.models import Count
    from django.utils import timezone
    from django_tenants.utils import schema_context

    from clinical.models import ReminderMessage

    totals: dict[str, int] = {}
    for schema in schemas:
        with schema_context(schema):
            rows = (
                ReminderMessage.objects.filter(due_at__lte=timezone.now())
                .values("state")
                .annotate(n=Count("id"))
            )
            for row in rows:
                totals[row["state"]] = totals.get(row["state"], 0) + row["n"]
    return totals


def due_all_done(schemas: list[str]) -> bool:
    states = db(lambda: reminder_states(schemas))
    return bool(states) and set(states) <= set(DONE_STATES)


# --- the run -------------------------------------------------------------------------------------


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    report = Report(
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        seconds=args.seconds,
        threads=args.threads,
        load_average_start=os.getloadavg(),
    )
    stack = LoadStack.create(keep_workdir=args.keep_logs)
    try:
        stack.start_data_stores()
        os.environ.update(stack.env())
        import django

        django.setup()
        from tests.load import seed

        setup_started = time.monotonic()
        seed.migrate()
        seeds = seed.seed_tenants()
        from django.db import connections

        connections.close_all()
        stack.start_web()
        stack.start_worker()
        stack.start_beat()
        say(
            f"stack ready in {time.monotonic() - setup_started:.0f} s; traffic for {args.seconds:.0f} s"
        )
        run(args, stack, seeds, report)
    finally:
        report.load_average_end = os.getloadavg()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: S110  (Django may not be set up yet)
            pass
        stack.close()
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(asdict(report), indent=2, default=str) + "\n")
        say(f"wrote {args.json}")
    return 0 if report.ok else 1


def run(args: argparse.Namespace, stack: LoadStack, seeds: list[Any], report: Report) -> None:
    from tests.load import reconcile
    from tests.load.traffic import ClientThread, Recorder, book_due_reminders, latency_table

    recorder = Recorder()
    schemas = [s.schema for s in seeds]
    t0 = time.monotonic()
    deadline = t0 + args.seconds
    budget = threading.Semaphore(args.max_requests)
    threads = [
        ClientThread(
            index=i, seed=seeds[i % len(seeds)], port=stack.web_port, recorder=recorder,
            t0=t0, deadline=deadline, budget=budget,
        )
        for i in range(args.threads)
    ]  # fmt: skip
    for thread in threads:
        thread.start()

    def at(offset: float) -> None:
        delay = t0 + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def book(batch: str, offset: int, count: int) -> int:
        return book_due_reminders(
            port=stack.web_port, seeds=seeds, per_tenant=count, recorder=recorder, t0=t0,
            batch=batch, clinician_offset=offset,
        )  # fmt: skip

    due_booked = book("A", 0, args.reminders)
    say(f"t={time.monotonic() - t0:.1f}s booked {due_booked} due reminders (batch A)")

    if "redis" in args.faults:
        at(OFFSETS["redis"] * args.seconds)
        report.faults["redis"] = redis_fault(args, stack, t0, schemas, book, report)
        due_booked += report.faults["redis"]["booked_during_outage"]
    if "postgres" in args.faults:
        at(OFFSETS["postgres"] * args.seconds)
        report.faults["postgres"] = postgres_fault(stack, seeds[0], t0, recorder)
    if "worker" in args.faults:
        at(OFFSETS["worker"] * args.seconds)
        fault = worker_fault(args, stack, t0, schemas, book)
        report.faults["worker"] = fault
        due_booked += fault["booked"]

    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic()) + 60)
    traffic_seconds = time.monotonic() - t0
    errors = [f"{t.name}: {t.error!r}" for t in threads if t.error is not None]
    report.check("client threads finished", not errors and not any(t.is_alive() for t in threads),
                 "; ".join(errors) or f"{len(threads)} threads")  # fmt: skip

    # Every due reminder is eventually sent (bounded wait; the sweep runs every 2 s).
    drain_started = time.monotonic()
    with contextlib.suppress(RuntimeError):
        wait_until(lambda: due_all_done(schemas), seconds=DRAIN_SECONDS, what="due reminders",
                   interval=0.5)  # fmt: skip
    time.sleep(3)  # a late duplicate would show up here
    report.reminders["drain_seconds"] = round(time.monotonic() - drain_started, 1)

    attempts = recorder.attempts
    report.total_requests = len(attempts)
    report.throughput = len(attempts) / traffic_seconds
    report.endpoints = latency_table(attempts, traffic_seconds)
    report.writes["client_keepalive_resends"] = recorder.counters.get("keepalive_resends", 0)
    reconcile.status_checks(report, attempts)
    reconcile.write_checks(report, recorder.writes, seeds)
    reconcile.reminder_checks(report, seeds, stack.fake, due_booked)
    beat = stack.services.get("beat")
    report.check("beat survived every fault", beat is not None and beat.alive(),
                 "alive" if beat is not None and beat.alive() else "exited: see beat.log")  # fmt: skip
    web = stack.services["web"]
    report.check("gunicorn never restarted", web.alive(), "same master process throughout")


def redis_fault(
    args: argparse.Namespace, stack: LoadStack, t0: float, schemas: list[str],
    book: Callable[[str, int, int], int], report: Report,
) -> dict[str, Any]:  # fmt: skip
    down_at = time.monotonic()
    stack.redis_stop()
    say(f"t={down_at - t0:.1f}s Redis stopped for {args.redis_down:.0f} s")
    # Bookings while the broker is gone: their on-commit enqueue fails; the sweep must recover.
    booked_box: list[int] = []
    booker = threading.Thread(
        target=lambda: booked_box.append(book("B", 1, max(1, args.reminders // 2))), daemon=True
    )
    booker.start()
    time.sleep(max(0.0, down_at + args.redis_down - time.monotonic()))
    up_at = time.monotonic()
    stack.redis_start()
    booker.join(timeout=120)
    booked = booked_box[0] if booked_box else 0
    say(f"t={up_at - t0:.1f}s Redis started again; {booked} due reminders booked during the outage")
    delivered_after: float | None = None
    try:
        wait_until(lambda: due_all_done(schemas), seconds=30, what="batch A+B sent", interval=0.3)
        delivered_after = time.monotonic() - up_at
    except RuntimeError:
        pass
    worker = stack.services["worker"]
    web_log = stack.services["web"].log_tail(200_000)
    logged = "Redis unreachable, serving requests unthrottled" in web_log
    return {
        "window": [round(down_at - t0, 2), round(up_at - t0, 2)],
        "booked_during_outage": booked,
        "throttle_fail_open_logged": logged,
        "worker_alive_after": worker.alive(),
        "reminders_sent_after_recovery_seconds": (
            round(delivered_after, 2) if delivered_after is not None else None
        ),
    }


def postgres_fault(stack: LoadStack, seed: Any, t0: float, recorder: Any) -> dict[str, Any]:
    """A prober reads one patient every 50 ms (a request that must reach the database) while
    PostgreSQL is stopped (fast: every connection terminated) and started again."""
    from tests.load.traffic import Client

    client = Client(stack.web_port, seed.host, recorder, t0)
    client.token = client.login()
    path = f"/api/v1/clinical/patients/{seed.patient_ids[0]}/"
    samples: list[tuple[float, float, int, str]] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            started = time.monotonic()
            status, _, payload = client.request("GET probe (postgres fault)", "GET", path)
            code = ""
            if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
                code = str(payload["error"].get("code", ""))
            samples.append((started, time.monotonic() - started, status, code))
            stop.wait(0.05)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    inflight = InFlightPush(stack=stack, seed=seed, recorder=recorder, t0=t0)
    inflight.start()
    claim_seen = inflight.wait_for_claim(seconds=15)
    if not claim_seen:
        time.sleep(0.5)
    down_at = time.monotonic()
    stack.postgres_stop()
    stopped_at = time.monotonic()
    say(f"t={down_at - t0:.1f}s PostgreSQL stopped (fast) in {stopped_at - down_at:.1f} s")
    time.sleep(POSTGRES_DOWN_SECONDS)
    stack.postgres_start()
    up_at = time.monotonic()
    say(f"t={up_at - t0:.1f}s PostgreSQL accepting connections again")
    first_ok: float | None = None
    deadline = up_at + 20
    while time.monotonic() < deadline and first_ok is None:
        first_ok = next((s for s, _, st, _ in samples if st == 200 and s >= up_at), None)
        time.sleep(0.05)
    time.sleep(0.5)
    stop.set()
    prober.join(timeout=35)
    client.close()
    inflight.join(timeout=60)
    # Probes sent once the stop had completed and before the server was back.
    outage = [(s, d, st, c) for s, d, st, c in samples if stopped_at <= s < up_at]
    unavailable = [d for _, d, st, c in outage if st == 503 and c == "service_unavailable"]
    other = sorted(
        # A 200 is fine (pg_ctl notices the server is up a little after it accepts connections);
        # anything but 200 or the documented 503 is not.
        {
            f"{st} {c}".strip()
            for _, _, st, c in outage
            if st != 200 and (st, c) != (503, "service_unavailable")
        }
    )
    return {
        "window": [round(down_at - t0, 2), round(up_at - t0, 2)],
        "stop_seconds": round(stopped_at - down_at, 2),
        "probes_during_outage": len(outage),
        "probes_503_service_unavailable": len(unavailable),
        "probe_other_answers_during_outage": other,
        "max_503_latency_ms": round(max(unavailable) * 1000, 1) if unavailable else None,
        "recovery_seconds": round(first_ok - up_at, 3) if first_ok is not None else None,
        "inflight_push": {
            "rows": inflight.rows,
            "claim_committed_before_stop": claim_seen,
            "answers": inflight.answers,
            "acknowledged_after_restart_seconds": (
                round(inflight.acked_at - up_at, 2) if inflight.acked_at is not None else None
            ),
        },
        # 503s are allowed from the stop until this long after the start (the recovery target).
        "allowed_503_window": [
            round(down_at - t0 - 0.1, 2),
            round(up_at - t0 + POSTGRES_RECOVERY_TARGET, 2),
        ],
    }


class InFlightPush(threading.Thread):
    """A 5,000-row sync push whose idempotency claim is committed and whose handler is still
    running when PostgreSQL stops; the client then retries it with the same key. It must be
    acknowledged soon after the server is back (not 409 idempotency_key_in_use until the claim
    times out) and all its rows must exist exactly once."""

    rows = 5000

    def __init__(self, *, stack: LoadStack, seed: Any, recorder: Any, t0: float) -> None:
        from tests.load.traffic import Client

        super().__init__(name="inflight-push", daemon=True)
        self.seed, self.recorder = seed, recorder
        self.client = Client(stack.web_port, seed.host, recorder, t0)
        self.client.token = self.client.login()
        self.key = str(uuid.uuid4())
        observed = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.changes: list[dict[str, Any]] = [
            {
                "op": "upsert", "id": str(uuid.uuid4()), "base_version": None,
                "fields": {
                    "field_id": seed.field_ids[i % len(seed.field_ids)], "observed_at": observed,
                    "kind": "rainfall", "value": 1.5, "unit": "mm", "text": f"inflight {i:05d}",
                },
            }
            for i in range(self.rows)
        ]  # fmt: skip
        self.answers: list[str] = []
        self.acked_at: float | None = None

    def run(self) -> None:
        from tests.load.traffic import Write

        body = {"changes": {"observations": self.changes}}
        statuses: dict[str, str] = {}
        started = time.monotonic()
        for _ in range(80):  # bounded: ~40 s of retries at most
            status, _, payload = self.client.request(
                "POST sync/push 5,000 rows (in flight at the stop)", "POST",
                "/api/v1/sync/push/", body, headers={"Idempotency-Key": self.key},
            )  # fmt: skip
            code = ""
            if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
                code = str(payload["error"].get("code", ""))
            self.answers.append(f"{status} {code}".strip())
            if status == 200 and isinstance(payload, dict):
                self.acked_at = time.monotonic()
                statuses = {r["id"]: r["status"] for r in payload.get("results", [])}
                break
            if status not in (0, 502, 503) and code != "idempotency_key_in_use":
                break
            time.sleep(0.5)
        self.client.close()
        # Compact the answers ("503 service_unavailable x4") and hand the rows to reconciliation.
        compact: list[str] = []
        for answer in self.answers:
            if compact and compact[-1].split(" x")[0] == answer:
                head, _, count = compact[-1].partition(" x")
                compact[-1] = f"{head} x{int(count or 1) + 1}"
            else:
                compact.append(answer)
        self.answers = compact
        for row in self.changes:
            self.recorder.write(
                Write(
                    "observation", self.seed.slug, self.key, row["fields"]["text"],
                    acked=statuses.get(row["id"]) in ("applied", "duplicate"),
                    object_id=row["id"], attempts=len(self.answers), last_status=200 if statuses else 0,
                    seconds=(self.acked_at or time.monotonic()) - started,
                )
            )  # fmt: skip

    def wait_for_claim(self, *, seconds: float) -> bool:
        """True once the server has committed the key's claim (the handler is running)."""
        from django_tenants.utils import schema_context

        from apikit.models import IdempotencyRecord

        def claimed() -> bool:
            with schema_context(self.seed.schema):
                return IdempotencyRecord.objects.filter(
                    key__endswith=self.key, state=IdempotencyRecord.State.IN_PROGRESS
                ).exists()

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.is_alive():
            if db(claimed):
                return True
            time.sleep(0.005)
        return False


def worker_fault(
    args: argparse.Namespace, stack: LoadStack, t0: float, schemas: list[str],
    book: Callable[[str, int, int], int],
) -> dict[str, Any]:  # fmt: skip
    """Slow the provider down so a batch is in flight, book due reminders, SIGKILL the worker
    (main process and pool child) once some of them have been sent, restart it."""
    count = args.reminders
    # Three quick sends, then one the provider accepts (records) but answers only after 5 s:
    # the worker is killed while it waits, so that row is "sending" with the message already
    # out. It must be reconciled (found at the provider), never sent twice.
    stack.fake.script(
        *[{"delay": WORKER_SEND_DELAY, "record": True}] * 3,
        {"delay": 5, "record": True},
        *[{"delay": WORKER_SEND_DELAY, "record": True}] * count,
    )
    before = stack.fake.create_requests
    booked = book("C", 2, count)
    wait_until(lambda: stack.fake.create_requests >= before + 4, seconds=30,
               what="sends of batch C to start", interval=0.02)  # fmt: skip
    time.sleep(0.3)
    killed_at = time.monotonic()
    stack.services["worker"].kill()
    sent_before_kill = stack.fake.create_requests - before
    states = db(lambda: reminder_states(schemas))
    say(
        f"t={killed_at - t0:.1f}s worker SIGKILLed after {sent_before_kill} sends of batch C; "
        f"reminder states {states}"
    )
    time.sleep(1.0)
    stack.start_worker()
    restarted_at = time.monotonic()
    say(f"t={restarted_at - t0:.1f}s worker restarted")
    return {
        "killed_at": round(killed_at - t0, 2),
        "booked": booked,
        "provider_sends_before_kill": sent_before_kill,
        "states_at_kill": states,
        "sending_at_kill": states.get("sending", 0),
        "restart_seconds": round(restarted_at - killed_at, 2),
    }


# --- output ---------------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_report(report: Report) -> None:
    lines = [
        "",
        f"Load run {report.started_at}: {report.seconds:.0f} s, {report.threads} client threads, "
        f"{report.total_requests} requests, {report.throughput:.1f} req/s "
        f"(load average {report.load_average_start[0]:.1f} -> "
        f"{report.load_average_end[0] if report.load_average_end else 0:.1f})",
        "",
    ]
    header = ("endpoint", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "statuses")
    rows = [header] + [
        (
            e["endpoint"], str(e["requests"]), f"{e['per_second']:.1f}", _ms(e["p50_ms"]),
            _ms(e["p95_ms"]), _ms(e["p99_ms"]),
            " ".join(f"{k}:{v}" for k, v in e["statuses"].items()),
        )
        for e in report.endpoints
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    for name, fault in report.faults.items():
        lines.append(f"fault {name}: " + json.dumps(fault, default=str))
    lines.append("writes: " + json.dumps(report.writes, default=str))
    lines.append("reminders: " + json.dumps(report.reminders, default=str))
    lines.append("")
    for check in report.checks:
        lines.append(f"[{'PASS' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
    lines.append("")
    lines.append("RESULT: " + ("PASS" if report.ok else "FAIL"))
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
