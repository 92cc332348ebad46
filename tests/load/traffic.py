"""The load generator: client threads speaking HTTP/1.1 (http.client) to gunicorn on loopback,
each looping over a weighted mix of portal reads and writes, sync pushes and pulls and logins
until the deadline or the request cap. Every attempt is timed per endpoint; every write carries
an Idempotency-Key and is retried with the same key on 503 or a dropped connection (what a real
client does), and its final outcome goes to the write ledger the reconciliation checks."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.load.seed import ADMIN_EMAIL, PASSWORD, TenantSeed

# (operation, weight)
MIX = (
    ("patients_list", 22),
    ("patient_detail", 14),
    ("appointments_list", 10),
    ("patient_create", 10),
    ("appointment_create", 10),
    ("sync_push", 10),
    ("sync_pull", 12),
    ("login", 4),
)
WRITE_RETRIES = 12
RETRY_PAUSE = 0.5
TIMEOUT = 30.0


@dataclass
class Attempt:
    endpoint: str
    started: float  # monotonic
    seconds: float
    status: int  # 0: connection error
    code: str = ""  # error envelope code of a 4xx/5xx


@dataclass
class Write:
    """One logical write and what the client finally saw."""

    kind: str  # patient | appointment | observation
    tenant: str
    key: str  # Idempotency-Key (push: the batch key)
    tag: str  # unique marker stored in the row (MRN, reason, observation text)
    acked: bool
    object_id: str = ""
    attempts: int = 0
    replayed: bool = False
    last_status: int = 0
    seconds: float = 0.0  # first attempt to final answer, retries included


@dataclass
class Recorder:
    attempts: list[Attempt] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(self, attempt: Attempt) -> None:
        with self.lock:
            self.attempts.append(attempt)

    def write(self, write: Write) -> None:
        with self.lock:
            self.writes.append(write)

    def count(self, name: str) -> None:
        with self.lock:
            self.counters[name] = self.counters.get(name, 0) + 1


class Client:
    """One keep-alive connection; reconnects after errors."""

    def __init__(self, port: int, host: str, recorder: Recorder, t0: float) -> None:
        self.port, self.host, self.recorder, self.t0 = port, host, recorder, t0
        self.conn: http.client.HTTPConnection | None = None
        self.token = ""

    def request(
        self,
        endpoint: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        token: str | None = None,
    ) -> tuple[int, dict[str, str], Any]:
        all_headers = {"Host": self.host, "Accept": "application/json"}
        bearer = self.token if token is None else token
        if bearer:
            all_headers["Authorization"] = f"Bearer {bearer}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        started = time.monotonic()
        status, response_headers, payload = 0, {}, None
        for _ in range(2):
            reused = self.conn is not None
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
                self.conn.request(method, path, body=data, headers=all_headers)
                response = self.conn.getresponse()
                raw = response.read()
                status = response.status
                response_headers = {k.lower(): v for k, v in response.getheaders()}
                if response_headers.get("connection", "").lower() == "close":
                    self.close()
                try:
                    payload = json.loads(raw) if raw else None
                except ValueError:
                    payload = None
                break
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # gunicorn closes idle keep-alive connections after 5 s: a request sent on one
                # it just closed gets no answer. Like any HTTP client, resend once on a fresh
                # connection (every write here carries an Idempotency-Key anyway).
                self.close()
                if not reused:
                    break
                self.recorder.count("keepalive_resends")
            except (OSError, http.client.HTTPException):
                self.close()
                break
        elapsed = time.monotonic() - started
        code = ""
        if status >= 400 and isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            code = str(payload["error"].get("code", ""))
        self.recorder.attempt(Attempt(endpoint, started - self.t0, elapsed, status, code))
        return status, response_headers, payload

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def login(self, device: str | None = None) -> str:
        body: dict[str, Any] = {"email": ADMIN_EMAIL, "password": PASSWORD}
        if device:
            body["device"] = device
        for _ in range(WRITE_RETRIES):
            status, _, payload = self.request(
                "POST auth/token", "POST", "/api/v1/auth/token/", body, token=""
            )
            if status == 200:
                return str(payload["access"])
            time.sleep(RETRY_PAUSE)
        raise RuntimeError(f"login failed on {self.host}: HTTP {status}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ClientThread(threading.Thread):
    def __init__(
        self,
        *,
        index: int,
        seed: TenantSeed,
        port: int,
        recorder: Recorder,
        t0: float,
        deadline: float,
        budget: threading.Semaphore,
    ) -> None:
        super().__init__(name=f"client-{index}", daemon=True)
        self.index, self.seed, self.deadline, self.budget = index, seed, deadline, budget
        self.recorder = recorder
        self.rng = random.Random(index)  # noqa: S311  (load mix)
        self.portal = Client(port, seed.host, recorder, t0)
        self.sync = Client(port, seed.host, recorder, t0)
        self.cursor: str | None = None
        self.serial = 0
        # Each thread books its own clinician, days ahead, in consecutive slots: no double
        # booking among threads, and these reminders are not due during the run.
        self.clinician = seed.clinician_ids[index % len(seed.clinician_ids)]
        base = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        self.next_slot = base + timedelta(days=3)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.portal.token = self.portal.login()
            status, _, payload = self.portal.request(
                "POST sync/devices", "POST", "/api/v1/sync/devices/",
                {"name": f"load phone {self.index}", "platform": "android"},
            )  # fmt: skip
            device = str(payload["id"]) if status == 201 else None
            self.sync.token = self.sync.login(device=device)
            ops = [name for name, _ in MIX]
            weights = [weight for _, weight in MIX]
            while time.monotonic() < self.deadline and self.budget.acquire(blocking=False):
                getattr(self, self.rng.choices(ops, weights)[0])()
        except BaseException as exc:  # reported by the runner
            self.error = exc
        finally:
            self.portal.close()
            self.sync.close()

    # --- reads ---------------------------------------------------------------------------------

    def patients_list(self) -> None:
        self.portal.request(
            "GET clinical/patients", "GET", "/api/v1/clinical/patients/?page_size=50"
        )

    def patient_detail(self) -> None:
        pk = self.rng.choice(self.seed.patient_ids)
        self.portal.request("GET clinical/patients/{id}", "GET", f"/api/v1/clinical/patients/{pk}/")

    def appointments_list(self) -> None:
        self.portal.request(
            "GET clinical/appointments", "GET", "/api/v1/clinical/appointments/?page_size=50"
        )

    def sync_pull(self) -> None:
        path = "/api/v1/sync/pull/?limit=200"
        if self.cursor:
            path += f"&cursor={self.cursor}"
        status, _, payload = self.sync.request("GET sync/pull", "GET", path)
        if status == 200 and isinstance(payload, dict):
            self.cursor = payload.get("cursor") or self.cursor
        elif status == 410:
            self.cursor = None

    def login(self) -> None:
        status, _, payload = self.portal.request(
            "POST auth/token", "POST", "/api/v1/auth/token/",
            {"email": ADMIN_EMAIL, "password": PASSWORD}, token="",
        )  # fmt: skip
        if status == 200:
            self.portal.token = str(payload["access"])

    # --- writes --------------------------------------------------------------------------------

    def _write(
        self, client: Client, endpoint: str, path: str, body: Any, write: Write, ok: int
    ) -> Any:
        """POST with an Idempotency-Key, retried with the same key while the answer is a 503 or
        no answer at all; a 409 idempotency_key_in_use (the first attempt still running) too."""
        payload: Any = None
        first = time.monotonic()
        for attempt in range(1, WRITE_RETRIES + 1):
            status, headers, payload = client.request(
                endpoint, "POST", path, body, headers={"Idempotency-Key": write.key}
            )
            write.attempts, write.last_status = attempt, status
            code = (
                payload["error"].get("code")
                if status >= 400
                and isinstance(payload, dict)
                and isinstance(payload.get("error"), dict)
                else ""
            )
            retry = status in (0, 502, 503) or (status == 409 and code == "idempotency_key_in_use")
            if not retry:
                break
            if time.monotonic() > self.deadline + 20:
                break
            time.sleep(RETRY_PAUSE)
        write.seconds = time.monotonic() - first
        write.acked = write.last_status == ok
        write.replayed = headers.get("idempotent-replayed", "") == "true" if write.acked else False
        return payload

    def _tag(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.index:02d}{self.serial:05d}"

    def patient_create(self) -> None:
        tag = self._tag("LD-")
        write = Write("patient", self.seed.slug, str(uuid.uuid4()), tag, False)
        payload = self._write(
            self.portal, "POST clinical/patients", "/api/v1/clinical/patients/",
            {
                "facility": self.seed.facility_id, "mrn": tag, "given_name": "Load",
                "family_name": f"Client{self.index}", "birth_date": "1980-05-17",
                "sex": "female", "phone": f"+4917{self.index:02d}{self.serial:07d}",
                "sms_opt_in": False,
            },
            write, 201,
        )  # fmt: skip
        if write.acked:
            write.object_id = str(payload["id"])
        self.recorder.write(write)

    def appointment_create(self) -> None:
        tag = self._tag("load-appt ")
        write = Write("appointment", self.seed.slug, str(uuid.uuid4()), tag, False)
        start = self.next_slot
        self.next_slot += timedelta(minutes=20)
        payload = self._write(
            self.portal, "POST clinical/appointments", "/api/v1/clinical/appointments/",
            {
                "patient": self.rng.choice(self.seed.patient_ids), "clinician": self.clinician,
                "facility": self.seed.facility_id, "starts_at": _iso(start),
                "ends_at": _iso(start + timedelta(minutes=15)), "reason": tag,
            },
            write, 201,
        )  # fmt: skip
        if write.acked:
            write.object_id = str(payload["id"])
        self.recorder.write(write)

    def sync_push(self) -> None:
        key = str(uuid.uuid4())
        rows: list[dict[str, Any]] = []
        now = datetime.now(UTC)
        for _ in range(5):
            rows.append(
                {
                    "op": "upsert",
                    "id": str(uuid.uuid4()),
                    "base_version": None,
                    "fields": {
                        "field_id": self.rng.choice(self.seed.field_ids),
                        "observed_at": _iso(now - timedelta(minutes=5)),
                        "kind": "rainfall",
                        "value": round(self.rng.uniform(0, 30), 1),
                        "unit": "mm",
                        "text": self._tag("obs "),
                    },
                }
            )
        batch = Write("push", self.seed.slug, key, "", False)
        payload = self._write(
            self.sync, "POST sync/push", "/api/v1/sync/push/", {"changes": {"observations": rows}},
            batch, 200,
        )  # fmt: skip
        statuses: dict[str, str] = {}
        if batch.acked and isinstance(payload, dict):
            statuses = {r["id"]: r["status"] for r in payload.get("results", [])}
        for row in rows:
            self.recorder.write(
                Write(
                    "observation", self.seed.slug, key, row["fields"]["text"],
                    acked=statuses.get(row["id"]) in ("applied", "duplicate"),
                    object_id=row["id"], attempts=batch.attempts, replayed=batch.replayed,
                    last_status=batch.last_status, seconds=batch.seconds,
                )
            )  # fmt: skip


def book_due_reminders(
    *, port: int, seeds: list[TenantSeed], per_tenant: int, recorder: Recorder, t0: float,
    batch: str, clinician_offset: int,
) -> int:  # fmt: skip
    """Book appointments starting ~1 h from now through the API (so their reminders are due at
    once) for opted-in seeded patients; returns how many were acknowledged. Each batch uses its
    own clinicians (the last ones, which client threads do not use) and slots."""
    acked = 0
    for seed in seeds:
        client = Client(port, seed.host, recorder, t0)
        client.token = client.login()
        clinician = seed.clinician_ids[-1 - clinician_offset]
        # Between the 1-hour and 2-hour marks: the "two_hours" reminder is due at once (and
        # only it: the "day_before" one has passed, so the booking gets one reminder).
        base = (datetime.now(UTC) + timedelta(minutes=61)).replace(second=0, microsecond=0)
        for i in range(min(per_tenant, 55)):
            key = str(uuid.uuid4())
            tag = f"load-reminder {batch} {i}"
            write = Write("appointment", seed.slug, key, tag, False)
            start = base + timedelta(minutes=i)
            body = {
                "patient": seed.patient_ids[(clinician_offset * 50 + i) % len(seed.patient_ids)],
                "clinician": clinician,
                "facility": seed.facility_id,
                "starts_at": _iso(start),
                "ends_at": _iso(start + timedelta(seconds=50)),
                "reason": tag,
            }
            payload: Any = None
            for _ in range(WRITE_RETRIES):
                status, _, payload = client.request(
                    "POST clinical/appointments (due)", "POST", "/api/v1/clinical/appointments/",
                    body, headers={"Idempotency-Key": key},
                )  # fmt: skip
                write.attempts += 1
                write.last_status = status
                if status not in (0, 502, 503, 409):
                    break
                time.sleep(RETRY_PAUSE)
            write.acked = write.last_status == 201
            if write.acked:
                write.object_id = str(payload["id"])
                acked += 1
            recorder.write(write)
        client.close()
    return acked


def latency_table(attempts: list[Attempt], seconds: float) -> list[dict[str, Any]]:
    """Per endpoint: count, throughput, p50/p95/p99 (ms) over every attempt, and status counts."""
    from tests.benchmarks.common import percentile

    grouped: dict[str, list[Attempt]] = defaultdict(list)
    for attempt in attempts:
        grouped[attempt.endpoint].append(attempt)
    rows = []
    for endpoint in sorted(grouped):
        items = grouped[endpoint]
        ok = [a.seconds * 1000 for a in items if 200 <= a.status < 400]
        statuses: dict[str, int] = defaultdict(int)
        for a in items:
            statuses[str(a.status) if a.status else "conn_error"] += 1
        rows.append(
            {
                "endpoint": endpoint,
                "requests": len(items),
                "per_second": len(items) / seconds if seconds else 0.0,
                "p50_ms": percentile(ok, 0.50) if ok else None,
                "p95_ms": percentile(ok, 0.95) if ok else None,
                "p99_ms": percentile(ok, 0.99) if ok else None,
                "statuses": dict(sorted(statuses.items())),
            }
        )
    return rows
