"""Real-time board (issue 18): N concurrent WebSocket clients (python ``websockets``, this one
process) on ONE ASGI process serving settings.asgi (uvicorn as deployed; daphne measured the
same way for comparison, no target), over two tenants and 20 facilities (10
each, every client subscribed to one facility's board for one day); appointments booked through
the REST API (a real gunicorn) at 50/s, spread over the 20 facilities.

Measured:

- latency from the API's response to the frame's arrival, on this process's monotonic clock:
  p50 / p95 / p99 (targets p95 <= 200 ms, p99 <= 500 ms), and how much of it is the commit-safe
  watermark: a sampler records when the commit-safe watermark (``sync.cursor.WATERMARK_SQL``, the
  relay's own) passes each event's txid (the relay may read an entry only then);
- the server process's CPU (share of one core over the steady phase) and memory per connection
  (RSS growth from one connection to N, divided by N; target <= 100 KiB);
- events delivered to a client of another tenant or facility (target 0);
- a process restart under the same write load: uvicorn gets SIGTERM (every socket closed with
  1012), a new one starts on the same port, every client reconnects after a random jitter and
  resumes its subscription from the last event id it saw. Reported: events lost (target 0,
  counting what resumes replay), events received twice, and the reconnect storm: the time from
  the new server answering until every client is subscribed again (target <= 30 s), with the
  errors seen (target 0).

    make bench BENCH_ARGS=realtime
    BENCH_REALTIME_CLIENTS=100 BENCH_REALTIME_SECONDS=10 make bench BENCH_ARGS=realtime
    BENCH_REALTIME_SERVERS=uvicorn make bench BENCH_ARGS=realtime     # the deployed server only
    BENCH_REALTIME_PROFILE=1 make bench BENCH_ARGS=realtime           # + py-spy of the server

BENCH_REALTIME_SERVERS (default ``uvicorn,daphne``) names the servers measured, one after the
other, on the same tenants (each booking later slots); the targets apply to uvicorn, the server the chart
runs. With BENCH_REALTIME_PROFILE=1, py-spy samples the server process through the steady phase
and writes collapsed stacks (``<server>-steady.collapsed`` beside the result) and the top frames
into the result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from settings.devstack import realtime_server_command
from tests.benchmarks.common import (
    ROOT,
    Result,
    bench_database,
    cpu_seconds,
    django_setup,
    http_json,
    migrate_public_schema,
    output_path,
    pass_fail,
    percentile,
    rss_bytes,
    say,
    unthrottled_tenant_provision,
)
from tests.benchmarks.serving import free_port, gunicorn, healthy, stop, wait_until

CLIENTS = int(os.environ.get("BENCH_REALTIME_CLIENTS", "1000"))
STEADY_SECONDS = float(os.environ.get("BENCH_REALTIME_SECONDS", "20"))
RESTART_WRITE_SECONDS = float(os.environ.get("BENCH_REALTIME_RESTART_SECONDS", "15"))
WRITES_PER_SECOND = 50.0
SERVERS = [
    name.strip()
    for name in os.environ.get("BENCH_REALTIME_SERVERS", "uvicorn,daphne").split(",")
    if name.strip()
]
PROFILE = os.environ.get("BENCH_REALTIME_PROFILE", "") == "1"
TENANTS = 2
FACILITIES_PER_TENANT = 10
# Clients reconnect after a random delay up to this (as docs/realtime.md asks of clients).
RECONNECT_JITTER = 5.0
DAY = dt.date(2031, 6, 2)
# One slot per write round (a write to each of the 20 boards): 5 minutes, so the 3,500 writes of
# two servers (175 rounds) stay inside the boards' one day.
SLOT = dt.timedelta(minutes=5)
PASSWORD = "Bench-realtime-2026"
TARGET_P95_MS = 200.0
TARGET_P99_MS = 500.0
TARGET_KIB_PER_CONNECTION = 100.0
TARGET_STORM_SECONDS = 30.0
SETTLE_TIMEOUT = 90.0


@dataclass(frozen=True)
class Board:
    tenant: int
    host: str
    schema: str
    facility: str
    token: str


@dataclass
class Written:
    tenant: int
    facility: str
    responded: float  # monotonic, when the API's response was read


@dataclass
class Client:
    index: int
    board: Board
    # Its own user's token: one socket per user, as front desks hold them (the per-user
    # connection limit applies per user).
    token: str
    last_id: str | None = None
    # appointment id -> first arrival (monotonic)
    seen: dict[str, float] = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    reloads: int = 0
    errors: list[str] = field(default_factory=list)
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    resumed_at: float | None = None
    # After the restart: when the server said ``ready`` (authenticated), before the resume.
    ready_at: float | None = None
    closes: list[int] = field(default_factory=list)


# --- seeding ---------------------------------------------------------------------------------------


def seed() -> tuple[list[Board], dict[str, tuple[str, str, str]], dict[int, list[str]]]:
    """Two clinic tenants, 10 facilities each (UTC, so the day is the UTC day), a clinician and a
    patient per facility, and one tenant-admin user per client. Returns the boards (tenant x
    facility, with the writer's token), each facility's (host, patient, clinician) and the
    clients' tokens per tenant."""
    from django.conf import settings
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from accounts.roles import Role
    from accounts.tokens import token_pair_issue
    from clinical.models import Facility, Patient

    boards: list[Board] = []
    facilities: dict[str, tuple[str, str, str]] = {}
    client_tokens: dict[int, list[str]] = {}
    per_tenant = -(-CLIENTS // TENANTS)

    for t in range(TENANTS):
        slug = f"rtbench{t}"
        tenant = unthrottled_tenant_provision(
            slug=slug, name=f"Realtime {t}", kind="clinic", password=PASSWORD
        )
        host = f"{slug}.{settings.BASE_DOMAIN}"
        with tenant_context(tenant):
            admin = User.objects.get(email=f"admin@{slug}.test")
            token = token_pair_issue(user=admin).access
            desks = User.objects.bulk_create(
                User(email=f"desk{n}@{slug}.test", role=Role.TENANT_ADMIN, is_active=True)
                for n in range(per_tenant)
            )
            client_tokens[t] = [token_pair_issue(user=desk).access for desk in desks]
            for f in range(FACILITIES_PER_TENANT):
                facility = Facility.objects.create(name=f"Clinic {f}", code=f"C{f}", timezone="UTC")
                clinician = User.objects.create(
                    email=f"doc{f}@{slug}.test", role=Role.CLINICIAN, is_active=True
                )
                patient = Patient.objects.create(
                    facility=facility,
                    mrn=f"M{f}",
                    given_name=f"Pat{f}",
                    family_name="Bench",
                    birth_date=dt.date(1980, 1, 1),
                )
                facilities[str(facility.pk)] = (host, str(patient.pk), str(clinician.pk))
                boards.append(Board(t, host, tenant.schema_name, str(facility.pk), token))
    return boards, facilities, client_tokens


# --- servers ---------------------------------------------------------------------------------------


def server_command(server: str, port: int) -> list[str]:
    """The ASGI server command: uvicorn as the chart and `make run` run it (helm/verdant realtime
    Deployment), or daphne with its defaults (Channels' own server)."""
    if server == "uvicorn":
        return realtime_server_command(
            port=port,
            extra=[
                "--timeout-graceful-shutdown",
                "15",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
        )
    if server == "daphne":
        return [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "--application-close-timeout",
            "15",
            "-v",
            "0",
            "settings.asgi:application",
        ]
    raise SystemExit(f"BENCH_REALTIME_SERVERS: unknown server {server!r} (uvicorn, daphne)")


def start_server(server: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = os.environ.copy()
    env.update(DJANGO_SETTINGS_MODULE="settings.dev", DEBUG="false", LOG_LEVEL="WARNING")
    with log.open("ab") as out:
        process = subprocess.Popen(
            server_command(server, port), cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: healthy(port), process=process, what=server, log=log, seconds=90)
    except RuntimeError:
        stop(process)
        raise
    return process


@contextlib.contextmanager
def profiled(pid: int, output: Path) -> Iterator[None]:
    """py-spy sampling ``pid`` (every thread, idle ones excluded) while the block runs."""
    if not PROFILE:
        yield
        return
    profiler = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--rate",
            "200",
            "--nonblocking",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        yield
    finally:
        profiler.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            profiler.wait(timeout=30)


def top_frames(collapsed: Path, *, limit: int = 15) -> list[tuple[str, float]]:
    """The frames with the largest inclusive share of the samples in py-spy's collapsed stacks."""
    if not collapsed.exists():
        return []
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        for frame in set(stack.split(";")):
            inclusive[frame] += int(count)
    ranked = sorted(inclusive.items(), key=lambda item: -item[1])
    return [(frame, round(100 * n / total, 1)) for frame, n in ranked[:limit] if total]


# --- the watermark sampler -------------------------------------------------------------------------


class WatermarkSampler:
    """(monotonic time, commit-safe watermark) every 5 ms on its own connection, through the
    relay's own query: when the relay could first read an entry of transaction X is the first
    sample above X."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> WatermarkSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def _run(self) -> None:
        import psycopg

        from sync.cursor import WATERMARK_SQL

        with psycopg.connect(self.url, autocommit=True) as connection:
            while not self.stopped.is_set():
                row = connection.execute(WATERMARK_SQL).fetchone()
                if row is not None:
                    self.samples.append((time.monotonic(), int(row[0])))
                time.sleep(0.005)

    def passed(self, txid: int) -> float | None:
        lo, hi = 0, len(self.samples)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.samples[mid][1] > txid:
                hi = mid
            else:
                lo = mid + 1
        return self.samples[lo][0] if lo < len(self.samples) else None


# --- clients ---------------------------------------------------------------------------------------


class Bench:
    def __init__(self, boards: list[Board], tokens: dict[int, list[str]], port: int) -> None:
        self.port = port
        self.clients: list[Client] = []
        used: dict[int, int] = defaultdict(int)
        for i in range(CLIENTS):
            board = boards[i % len(boards)]
            self.clients.append(Client(i, board, tokens[board.tenant][used[board.tenant]]))
            used[board.tenant] += 1
        self.written: dict[str, Written] = {}
        # The same appointments by board (tenant, facility): what each board's clients expect.
        self.written_to: dict[tuple[int, str], set[str]] = defaultdict(set)
        self.txids: dict[str, int] = {}
        self.restarting = False
        self.server_back: float | None = None

    async def run_client(self, client: Client, stop: asyncio.Event) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        board = client.board
        delay = 0.0
        while not stop.is_set():
            if delay:
                await asyncio.sleep(delay)
            attempted = time.monotonic()
            try:
                async with connect(
                    f"ws://{board.host}:{self.port}/ws/v1/",
                    host="127.0.0.1",
                    port=self.port,
                    subprotocols=["verdant.v1", f"bearer.{client.token}"],  # type: ignore[list-item]
                    compression=None,
                    open_timeout=60,
                    ping_interval=None,
                    max_queue=None,
                ) as ws:
                    await self._session(client, ws)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd is not None else 1006
                client.closes.append(code)
                if code not in (1001, 1012) and not stop.is_set():
                    client.errors.append(f"closed {code}")
            except (OSError, TimeoutError) as exc:
                # A refusal counts only for an attempt made once the new process answered.
                if self.server_back is not None and attempted >= self.server_back:
                    client.errors.append(f"connect: {exc!r}"[:200])
            except Exception as exc:
                client.errors.append(repr(exc)[:200])
            # Reconnect with jitter (docs/realtime.md: clients spread their reconnects).
            delay = random.uniform(0.1, RECONNECT_JITTER)  # noqa: S311

    async def _session(self, client: Client, ws: Any) -> None:
        board = client.board
        async for raw in ws:
            now = time.monotonic()
            frame = orjson.loads(raw)
            kind = frame.get("type")
            if kind == "ready":
                client.ready_at = now
                message: dict[str, Any] = {
                    "type": "subscribe",
                    "sub": "board",
                    "kind": "appointments",
                    "params": {"facility": board.facility, "from": DAY.isoformat()},
                }
                if client.last_id is not None:
                    message["since"] = client.last_id
                await ws.send(orjson.dumps(message).decode())
            elif kind == "subscribed":
                if client.subscribed.is_set():
                    client.resumed_at = now
                client.subscribed.set()
            elif kind == "event":
                event_id = frame["id"]
                client.last_id = event_id
                if event_id in client.event_ids:
                    client.duplicates += 1
                    continue
                client.event_ids.add(event_id)
                if frame.get("event") == "appointments.reload":
                    client.reloads += 1
                    continue
                appointment = str(frame.get("appointment", {}).get("id"))
                client.seen.setdefault(appointment, now)
                self.txids.setdefault(appointment, int(event_id.split(":")[0]))
            elif kind in ("error", "closing") and not (
                kind == "closing" and frame.get("code") in (1001, 1012)
            ):
                client.errors.append(orjson.dumps(frame).decode()[:200])


def write_one(
    port: int, facilities: dict[str, tuple[str, str, str]], boards: list[Board], k: int
) -> tuple[str, Written] | None:
    board = boards[k % len(boards)]
    host, patient, clinician = facilities[board.facility]
    starts = dt.datetime.combine(DAY, dt.time(0), tzinfo=dt.UTC) + SLOT * (k // len(boards))
    status, body, _, _ = http_json(
        port,
        host,
        "POST",
        "/api/v1/clinical/appointments/",
        board.token,
        {
            "patient": patient,
            "clinician": clinician,
            "facility": board.facility,
            "starts_at": starts.isoformat(),
            "ends_at": (starts + dt.timedelta(minutes=4)).isoformat(),
        },
    )
    if status != 201:
        say(f"write {k}: {status} {body}")
        return None
    return str(body["id"]), Written(board.tenant, board.facility, time.monotonic())


async def write_load(
    bench: Bench,
    api_port: int,
    facilities: dict[str, tuple[str, str, str]],
    boards: list[Board],
    *,
    first: int,
    seconds: float,
    pool: concurrent.futures.ThreadPoolExecutor,
) -> int:
    """Writes at WRITES_PER_SECOND for ``seconds``; returns the next write number."""
    loop = asyncio.get_running_loop()
    count = int(seconds * WRITES_PER_SECOND)
    started = time.monotonic()
    pending = []
    for n in range(count):
        await asyncio.sleep(max(0.0, started + n / WRITES_PER_SECOND - time.monotonic()))
        pending.append(
            loop.run_in_executor(pool, write_one, api_port, facilities, boards, first + n)
        )
    for done in await asyncio.gather(*pending):
        if done is not None:
            appointment, written = done
            bench.written[appointment] = written
            bench.written_to[(written.tenant, written.facility)].add(appointment)
    return first + count


def expected_for(bench: Bench, client: Client) -> set[str]:
    """The appointments written to the client's board: a lookup, not a scan of every write
    (settle() asks for every client every 0.25 s, on the event loop that timestamps frames)."""
    return bench.written_to.get((client.board.tenant, client.board.facility), set())


async def settle(bench: Bench, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all(expected_for(bench, c) <= c.seen.keys() or c.reloads for c in bench.clients):
            break
        await asyncio.sleep(0.25)
    return time.monotonic() - started


@contextlib.contextmanager
def servers(server: str, log_dir: Path) -> Iterator[tuple[int, int, list[subprocess.Popen[bytes]]]]:
    api_port, ws_port = free_port(), free_port()
    with gunicorn(
        app="settings.wsgi:application",
        port=api_port,
        log=log_dir / "gunicorn.log",
        workers=2,
        threads=8,
    ):
        realtime = [start_server(server, ws_port, log_dir / f"{server}.log")]
        try:
            yield api_port, ws_port, realtime
        finally:
            for process in realtime:
                stop(process)


async def measure(
    server: str,
    result: Result,
    boards: list[Board],
    tokens: dict[int, list[str]],
    facilities: dict[str, tuple[str, str, str]],
    database_url: str,
    log_dir: Path,
    *,
    first_write: int,
) -> int:
    """Measures ``server``; returns the number of the next write (slots stay distinct across
    servers)."""
    with servers(server, log_dir) as (api_port, ws_port, realtime):
        bench = Bench(boards, tokens, ws_port)
        stop_clients = asyncio.Event()
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=16)
        # One connection first: the process's relay and LISTEN connection exist before the
        # baseline (they are per process, not per connection).
        first = asyncio.create_task(bench.run_client(bench.clients[0], stop_clients))
        await asyncio.wait_for(bench.clients[0].subscribed.wait(), 60)
        await asyncio.sleep(1)
        baseline = rss_bytes(realtime[0].pid)
        say(f"connecting {CLIENTS} clients")
        connect_started = time.monotonic()
        tasks = [first] + [
            asyncio.create_task(bench.run_client(c, stop_clients)) for c in bench.clients[1:]
        ]
        await asyncio.wait_for(asyncio.gather(*(c.subscribed.wait() for c in bench.clients)), 300)
        connect_seconds = time.monotonic() - connect_started
        await asyncio.sleep(2)
        per_connection = (rss_bytes(realtime[0].pid) - baseline) / max(1, CLIENTS - 1)
        say(f"all subscribed in {connect_seconds:.1f} s; {per_connection / 1024:.1f} KiB each")

        # --- steady phase ---
        collapsed = log_dir.parent / f"{server}-steady.collapsed"
        with (
            WatermarkSampler(database_url) as sampler,
            profiled(realtime[0].pid, collapsed),
        ):
            cpu_before, wall_before = cpu_seconds(realtime[0].pid), time.monotonic()
            own_before = cpu_seconds(os.getpid())
            load_before = os.getloadavg()[0]
            next_write = await write_load(
                bench,
                api_port,
                facilities,
                boards,
                first=first_write,
                seconds=STEADY_SECONDS,
                pool=pool,
            )
            await settle(bench, SETTLE_TIMEOUT)
            wall = time.monotonic() - wall_before
            cpu_share = (cpu_seconds(realtime[0].pid) - cpu_before) / wall
            # The clients' process: on a busy machine its own backlog is part of the latency.
            client_share = (cpu_seconds(os.getpid()) - own_before) / wall
            load_after = os.getloadavg()[0]
            steady = dict(bench.written)
            latencies: list[float] = []
            watermark_waits: list[float] = []
            for client in bench.clients:
                for appointment, arrived in client.seen.items():
                    written = steady.get(appointment)
                    if written is None:
                        continue
                    latencies.append((arrived - written.responded) * 1000)
            for appointment, written in steady.items():
                txid = bench.txids.get(appointment)
                passed = sampler.passed(txid) if txid is not None else None
                if passed is not None:
                    watermark_waits.append(max(0.0, (passed - written.responded) * 1000))

        wrong = 0
        for client in bench.clients:
            expected = expected_for(bench, client)
            wrong += len(set(client.seen) - expected)
        lost_steady = sum(
            len(expected_for(bench, c) - c.seen.keys()) for c in bench.clients if not c.reloads
        )

        # --- restart under load: SIGTERM (1012 to every socket), a new process, resume ---
        say(f"restarting the {server} process under the write load")
        bench.restarting = True
        writes = asyncio.create_task(
            write_load(
                bench,
                api_port,
                facilities,
                boards,
                first=next_write,
                seconds=RESTART_WRITE_SECONDS,
                pool=pool,
            )
        )
        await asyncio.sleep(2)
        for client in bench.clients:
            client.resumed_at = None
            client.ready_at = None
        old = realtime.pop()
        await asyncio.to_thread(stop, old)
        realtime.append(
            await asyncio.to_thread(start_server, server, ws_port, log_dir / f"{server}.log")
        )
        bench.server_back = time.monotonic()
        bench.restarting = False
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(c.resumed_at is None for c in bench.clients):
            await asyncio.sleep(0.1)
        resumed = [c.resumed_at for c in bench.clients if c.resumed_at is not None]
        storm_seconds = (max(resumed) - bench.server_back) if resumed else float("nan")
        readied = [c.ready_at for c in bench.clients if c.ready_at is not None]
        ready_seconds = (max(readied) - bench.server_back) if readied else float("nan")
        next_write = await writes
        await settle(bench, SETTLE_TIMEOUT)
        lost = sum(
            len(expected_for(bench, c) - c.seen.keys()) for c in bench.clients if not c.reloads
        )
        duplicates = sum(c.duplicates for c in bench.clients)
        reloads = sum(1 for c in bench.clients if c.reloads)
        errors = [e for c in bench.clients for e in c.errors]
        wrong_after = sum(len(set(c.seen) - expected_for(bench, c)) for c in bench.clients)
        stop_clients.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        pool.shutdown(wait=False, cancel_futures=True)

    frames = len(latencies)
    first_row = len(result.rows)
    details: dict[str, Any] = result.details.setdefault(server, {})

    def add(metric: str, value: float, unit: str, *, target: str = "", status: str = "") -> None:
        result.add(f"{server}: {metric}", value, unit, target=target, status=status)

    details["profile_top_frames_percent"] = top_frames(collapsed)
    p50, p95, p99 = (
        percentile(latencies, q) if latencies else float("nan") for q in (0.5, 0.95, 0.99)
    )
    w50, w95 = (
        percentile(watermark_waits, q) if watermark_waits else float("nan") for q in (0.5, 0.95)
    )
    add("clients (one process each side)", CLIENTS, "sockets")
    add("writes through the API (steady phase)", len(steady), "appointments")
    add("frames measured (steady phase)", frames, "frames")
    add("latency p50 (API response -> frame)", round(p50, 1), "ms")
    add(
        "latency p95",
        round(p95, 1),
        "ms",
        target="<= 200 ms",
        status=pass_fail(p95 <= TARGET_P95_MS),
    )
    add(
        "latency p99",
        round(p99, 1),
        "ms",
        target="<= 500 ms",
        status=pass_fail(p99 <= TARGET_P99_MS),
    )
    add("of which commit-safe watermark wait, p50", round(w50, 1), "ms")
    add("of which commit-safe watermark wait, p95", round(w95, 1), "ms")
    add("server CPU during the steady phase", round(cpu_share * 100, 1), "% of one core")
    add(
        "clients' process CPU during the steady phase",
        round(client_share * 100, 1),
        "% of one core",
    )
    add("machine load average (1 min), steady phase start / end", round(load_before, 1), "")
    details.update(load_average_end=round(load_after, 1), cpus=os.cpu_count())
    add(
        "memory per connection",
        round(per_connection / 1024, 1),
        "KiB",
        target="<= 100 KiB",
        status=pass_fail(per_connection / 1024 <= TARGET_KIB_PER_CONNECTION),
    )
    add("connect + subscribe, all clients", round(connect_seconds, 1), "s")
    add(
        "events to a wrong tenant or facility",
        wrong + wrong_after,
        "events",
        target="0",
        status=pass_fail(wrong + wrong_after == 0),
    )
    add(
        "events lost (steady phase)",
        lost_steady,
        "events",
        target="0",
        status=pass_fail(lost_steady == 0),
    )
    add(
        "events lost across a process restart (resumes counted)",
        lost,
        "events",
        target="0",
        status=pass_fail(lost == 0),
    )
    add(
        "events received twice", duplicates, "events", target="0", status=pass_fail(duplicates == 0)
    )
    add("clients told to reload (4409 / reload event)", reloads, "clients")
    add(
        "reconnect storm: all clients resumed after the restart",
        round(storm_seconds, 1),
        "s",
        target="<= 30 s",
        status=pass_fail(len(resumed) == CLIENTS and storm_seconds <= TARGET_STORM_SECONDS),
    )
    add("of which: all clients connected and authenticated again", round(ready_seconds, 1), "s")
    add(
        "errors (connections, frames, close codes other than 1001/1012)",
        len(errors),
        "errors",
        target="0",
        status=pass_fail(not errors),
    )
    details.update(
        clients=CLIENTS,
        resumed=len(resumed),
        steady_seconds=STEADY_SECONDS,
        restart_write_seconds=RESTART_WRITE_SECONDS,
        writes_total=len(bench.written),
        reconnect_jitter_seconds=RECONNECT_JITTER,
        errors_sample=errors[:20],
        close_codes=sorted({code for c in bench.clients for code in c.closes}),
    )
    for row in result.rows[first_row:]:
        say(f"{row.metric}: {row.value} {row.unit} {row.status}")
    return next_write


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="realtime", details={})
    # Tokens are issued once, in seed(): they must outlive both servers' runs and reconnects.
    os.environ["JWT_ACCESS_MINUTES"] = "120"
    with bench_database("realtime") as url:
        os.environ.setdefault("DEBUG", "false")
        django_setup("settings.dev")
        from django.db import connections

        from tenants.services import template_schema_ensure

        say(f"migrating and seeding {TENANTS} tenants x {FACILITIES_PER_TENANT} facilities")
        migrate_public_schema()
        template_schema_ensure()
        boards, facilities, tokens = seed()
        connections.close_all()
        log_dir = output.parent / "realtime-logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        next_write = 0
        for server in SERVERS:
            say(f"--- {server} ---")
            next_write = asyncio.run(
                measure(
                    server,
                    result,
                    boards,
                    tokens,
                    facilities,
                    url,
                    log_dir,
                    first_write=next_write,
                )
            )
    result.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
