"""Tenant memory bound (issue 20, item 2): backend private memory and throughput of all-tenants
traffic through gunicorn, WITH the bound on the distinct schemas a connection serves
(DB_MAX_SCHEMAS_PER_CONNECTION, tenants/postgresql_backend) and WITHOUT it, directly and through
PgBouncer in session mode.

The set-ups (each run: a fresh gunicorn, and a fresh PgBouncer for the PgBouncer ones):

- ``direct, bound``: DB_MAX_SCHEMAS_PER_CONNECTION as configured (default 250);
- ``direct, no bound``: DB_MAX_SCHEMAS_PER_CONNECTION=0 — what the project did before: a
  connection is bounded by CONN_MAX_AGE (60 s) and gunicorn's max_requests only;
- ``pgbouncer, bound``: the bound plus ``server_lifetime = 0`` (a server connection serves one
  client session, so Django's close reaches PostgreSQL);
- ``pgbouncer, no bound``: DB_MAX_SCHEMAS_PER_CONNECTION=0 and PgBouncer's defaults
  (``server_lifetime = 3600``): "the same set-up without the bound" is the recommended session
  pool as it was deployed, where a server connection outlives Django's client sessions.

gunicorn runs with the production configuration (settings/gunicorn.conf.py: GUNICORN_WORKERS=2,
GUNICORN_THREADS=4, max_requests 2000, CONN_MAX_AGE 60) on settings.dev with DEBUG off. BENCH_
CLIENTS client threads (default: workers x threads) each walk every tenant in their own random
order, GET /api/v1/clinical/patients/ with the tenant admin's token, for BENCH_SECONDS (default
40). A monitor samples, every 0.5 s, RssAnon (/proc/<pid>/status; run on the database host) of
every backend of the benchmark database named ``verdant-web`` (pg_stat_activity.application_name;
PgBouncer passes it on). Reported per set-up: the peak RssAnon of any backend and throughput
(requests/s), each the median of BENCH_RUNS (default 3) runs, set-ups alternating run by run.
Target at BENCH_TENANTS (default 2,000): peak RssAnon per backend <= 64 MiB with the bound
(directly and through PgBouncer), and bound throughput >= 90 % of no-bound throughput. The
10-tenant figures (BENCH_SMALL_TENANTS, 0 to skip) are reported without a target.

The tenants: with BENCH_SOURCE_DATABASE=<name> (e.g. the ``verdant_bench_tenant_scale`` a
``BENCH_KEEP_DATABASE=1`` tenant_scale run left) the benchmark database is ``CREATE DATABASE
... TEMPLATE <name>`` (seconds; nobody may be connected to the source); otherwise, and for any
tenants the source lacks, they are provisioned with the project's code as tenant_scale does
(same slugs, same password, bench_settings). Plans are made unthrottled in the copy.

    make bench BENCH_ARGS=tenant_memory
    BENCH_SOURCE_DATABASE=verdant_bench_tenant_scale make bench BENCH_ARGS=tenant_memory
"""

from __future__ import annotations

import contextlib
import http.client
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tests.benchmarks import bench_tenant_scale as scale
from tests.benchmarks.bulk import create_tenants
from tests.benchmarks.common import (
    ROOT,
    UNTHROTTLED_PLAN,
    Result,
    bench_database,
    database_name,
    django_setup,
    maintenance_url,
    mib,
    migrate_public_schema,
    output_path,
    pass_fail,
    recreate_database,
    say,
)
from tests.benchmarks.serving import deployed_gunicorn, free_port, port_accepts, stop, wait_until

TENANTS = int(os.environ.get("BENCH_TENANTS", "2000"))
SMALL_TENANTS = int(os.environ.get("BENCH_SMALL_TENANTS", "10"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "40"))
WORKERS = int(os.environ.get("GUNICORN_WORKERS", "2"))
THREADS = int(os.environ.get("GUNICORN_THREADS", "4"))
CLIENTS = int(os.environ.get("BENCH_CLIENTS", str(WORKERS * THREADS)))
BOUND = int(os.environ.get("DB_MAX_SCHEMAS_PER_CONNECTION", "250"))
SOURCE_DATABASE = os.environ.get("BENCH_SOURCE_DATABASE", "").strip()
SETTINGS = "tests.benchmarks.bench_settings"
LIST_PATH = "/api/v1/clinical/patients/"
TARGET_MIB = 64.0
TARGET_THROUGHPUT = 0.90
SAMPLE_SECONDS = 0.5
WARM_UP_SECONDS = 3.0
BULK_CHUNK = 100
APPLICATION_NAME = "verdant-web"
PGBOUNCER_DEFAULT_LIFETIME = 3600


@dataclass(frozen=True)
class Setup:
    name: str
    bound: int
    pgbouncer: bool
    server_lifetime: int | None = None


SETUPS = (
    Setup("direct, bound", BOUND, pgbouncer=False),
    Setup("direct, no bound", 0, pgbouncer=False),
    Setup("pgbouncer, bound", BOUND, pgbouncer=True, server_lifetime=0),
    Setup("pgbouncer, no bound", 0, pgbouncer=True, server_lifetime=PGBOUNCER_DEFAULT_LIFETIME),
)


@dataclass
class RunResult:
    setup: str
    tenants: int
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    peak_rss_anon_bytes: int = 0
    backends_seen: int = 0
    samples: int = 0
    final_rss_anon_bytes: list[int] = field(default_factory=list)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# --- the database ---------------------------------------------------------------------------------


def copy_source_database(url: str, source: str) -> None:
    """Recreate the benchmark database as a copy of ``source`` (CREATE DATABASE ... TEMPLATE
    needs nobody connected to the source: say who is, and stop)."""
    import psycopg

    target = database_name(url)
    with psycopg.connect(maintenance_url(url), autocommit=True) as conn:
        if (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [source]).fetchone()
            is None
        ):
            raise SystemExit(f"BENCH_SOURCE_DATABASE={source}: no such database")
        users = conn.execute(
            "SELECT pid, coalesce(application_name, ''), coalesce(usename, '') "
            "FROM pg_stat_activity WHERE datname = %s",
            [source],
        ).fetchall()
        if users:
            who = ", ".join(
                f"pid {pid} ({app or 'no application_name'}, {user})" for pid, app, user in users
            )
            raise SystemExit(
                f"BENCH_SOURCE_DATABASE={source}: {len(users)} session(s) connected ({who}); "
                "CREATE DATABASE ... TEMPLATE needs none. Wait for them to finish."
            )
    say(f"database {target}: copying {source} (CREATE DATABASE ... TEMPLATE)")
    started = time.perf_counter()
    recreate_database(url, template=source)
    say(f"database {target}: copied in {time.perf_counter() - started:.1f} s")


def tenants_ready(count: int, database_url: str) -> None:
    """At least ``count`` benchmark tenants (tenant_scale's slugs), creating what is missing;
    every plan unthrottled (the benchmark measures memory, not the plan's limits)."""
    from django.db import connection

    from tenants.models import Plan, Tenant
    from tenants.services import template_schema_ensure

    if Tenant._meta.db_table not in connection.introspection.table_names():
        say("migrating the public schema and the template")
        migrate_public_schema()
        template_schema_ensure()
    have = Tenant.objects.filter(slug__startswith=f"{scale.SLUG_PREFIX}-").count()
    # Creation is not what this benchmark measures: the rest in bulk (tests/benchmarks/bulk.py:
    # the template's script replayed per schema, one shared password hash), tenant_scale's slugs.
    for start in range(have, count, BULK_CHUNK):
        slugs = [scale.slug_for(index) for index in range(start, min(start + BULK_CHUNK, count))]
        seconds = create_tenants(database_url, slugs)
        say(f"created tenants {start}..{start + len(slugs) - 1} in bulk ({seconds:.1f} s)")
    Plan.objects.update(**UNTHROTTLED_PLAN)


def tokens_for(count: int) -> dict[str, str]:
    from tenants.services import tenant_host

    tokens = {}
    for index in range(count):
        slug = scale.slug_for(index)
        tokens[tenant_host(slug)] = scale.access_token(slug)
    return tokens


# --- PgBouncer and gunicorn -----------------------------------------------------------------------


def pgbouncer_executable() -> str:
    """Debian's pgbouncer, installed by .ci/ensure-pgbouncer when missing."""
    ensure = subprocess.run([str(ROOT / ".ci" / "ensure-pgbouncer")], check=False)
    if ensure.returncode != 0:
        raise SystemExit("pgbouncer is missing (see .ci/ensure-pgbouncer's message above)")
    for candidate in (os.environ.get("PGBOUNCER", ""), "/usr/sbin/pgbouncer", "pgbouncer"):
        if candidate and (Path(candidate).exists() or candidate == "pgbouncer"):
            return candidate
    raise SystemExit("pgbouncer not found")


@contextlib.contextmanager
def pgbouncer(*, database_url: str, server_lifetime: int, workdir: Path) -> Iterator[str]:
    """A private PgBouncer in session mode in front of the benchmark database; yields the
    DATABASE_URL that goes through it."""
    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o777)
    ini = workdir / "pgbouncer.ini"
    log = workdir / "pgbouncer.log"
    ini.write_text(
        "[databases]\n"
        f"{name} = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432} dbname={name} "
        f"user={parts.username or 'postgres'}\n"
        "[pgbouncer]\n"
        "listen_addr = 127.0.0.1\n"
        f"listen_port = {port}\n"
        "unix_socket_dir =\n"
        "auth_type = any\n"
        "pool_mode = session\n"
        "max_client_conn = 500\n"
        "default_pool_size = 40\n"
        f"server_lifetime = {server_lifetime}\n"
        f"logfile = {log}\n"
        f"pidfile = {workdir / 'pgbouncer.pid'}\n"
    )
    ini.chmod(0o644)
    command = [pgbouncer_executable(), str(ini)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]  # PgBouncer refuses to run as root
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: port_accepts(port), process=process, what="pgbouncer", log=log)
        yield urlunsplit(parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{port}"))
    finally:
        stop(process)


@contextlib.contextmanager
def gunicorn(*, database_url: str, bound: int, log: Path) -> Iterator[int]:
    """gunicorn as deployed (settings/gunicorn.conf.py) on settings.dev with DEBUG off."""
    port = free_port()
    env = os.environ.copy()
    env.update(
        DJANGO_SETTINGS_MODULE="settings.dev",
        DATABASE_URL=database_url,
        DB_MAX_SCHEMAS_PER_CONNECTION=str(bound),
        PORT=str(port),
        VERDANT_PROCESS="web",
    )
    env.pop("DB_CONN_MAX_AGE", None)  # the deployed default (60 s)
    with deployed_gunicorn(
        port=port, log=log, workers=WORKERS, threads=THREADS, env=env, stop_seconds=60
    ):
        yield port


# --- load and memory --------------------------------------------------------------------------------


class Monitor:
    """Samples RssAnon of every ``verdant-web`` backend of the database on its own connection."""

    def __init__(self, database_url: str, database: str) -> None:
        self.url = maintenance_url(database_url)
        self.database = database
        self.peak = 0
        self.pids: set[int] = set()
        self.samples = 0
        self.last: dict[int, int] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)

    def loop(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                self.sample(conn)
                self.stop.wait(SAMPLE_SECONDS)
            self.sample(conn)

    def sample(self, conn: Any) -> None:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            [self.database, APPLICATION_NAME],
        ).fetchall()
        current = {}
        for (pid,) in rows:
            size = scale.rss_anon_bytes(int(pid))
            if size is not None:
                current[int(pid)] = size
        self.last = current
        self.pids |= set(current)
        self.peak = max([self.peak, *current.values()])
        self.samples += 1

    def __enter__(self) -> Monitor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def load(port: int, tokens: dict[str, str], seconds: float) -> tuple[int, int, float]:
    """CLIENTS threads, each over every tenant in its own random order, keep-alive connections,
    for ``seconds``: (200 responses, other outcomes, elapsed)."""
    hosts = list(tokens)
    done = [0] * CLIENTS
    failed = [0] * CLIENTS
    deadline = time.monotonic() + seconds

    def client(number: int) -> None:
        order = hosts[:]
        random.Random(number).shuffle(order)  # noqa: S311 (a load order, not a secret)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        index = 0
        while time.monotonic() < deadline:
            host = order[index % len(order)]
            index += 1
            try:
                conn.request(
                    "GET",
                    LIST_PATH,
                    headers={"Host": host, "Authorization": f"Bearer {tokens[host]}"},
                )
                response = conn.getresponse()
                response.read()
                if response.status == 200:
                    done[number] += 1
                else:
                    failed[number] += 1
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                failed[number] += 1
                conn.close()
        conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done), sum(failed), time.monotonic() - started


def one_run(setup: Setup, *, database_url: str, tokens: dict[str, str], workdir: Path) -> RunResult:
    database = database_name(database_url)
    result = RunResult(setup=setup.name, tenants=len(tokens))
    with contextlib.ExitStack() as stack:
        url = database_url
        if setup.pgbouncer:
            url = stack.enter_context(
                pgbouncer(
                    database_url=database_url,
                    server_lifetime=setup.server_lifetime or 0,
                    workdir=workdir / "pgbouncer",
                )
            )
        log = workdir / f"gunicorn-{setup.name.replace(', ', '-').replace(' ', '_')}.log"
        port = stack.enter_context(gunicorn(database_url=url, bound=setup.bound, log=log))
        # Not measured: each worker's first requests import the URL confs and views.
        first = next(iter(tokens))
        load(port, {first: tokens[first]}, WARM_UP_SECONDS)
        with Monitor(database_url, database) as monitor:
            result.requests, result.errors, result.seconds = load(port, tokens, SECONDS)
        result.peak_rss_anon_bytes = monitor.peak
        result.backends_seen = len(monitor.pids)
        result.samples = monitor.samples
        result.final_rss_anon_bytes = sorted(monitor.last.values())
    say(
        f"{setup.name}, {len(tokens)} tenants: {result.throughput:.1f} req/s "
        f"({result.requests} ok, {result.errors} other), peak RssAnon "
        f"{mib(result.peak_rss_anon_bytes):.1f} MiB over {result.backends_seen} backends"
    )
    return result


def measure(tenants: int, *, database_url: str, workdir: Path) -> dict[str, list[RunResult]]:
    tokens = tokens_for(tenants)
    from django.db import connections

    connections.close_all()
    runs: dict[str, list[RunResult]] = {setup.name: [] for setup in SETUPS}
    for number in range(RUNS):
        # Alternate: each round runs every set-up once, in a rotated order.
        order = SETUPS[number % len(SETUPS) :] + SETUPS[: number % len(SETUPS)]
        for setup in order:
            say(f"N={tenants} round {number + 1}/{RUNS}: {setup.name}")
            runs[setup.name].append(
                one_run(setup, database_url=database_url, tokens=tokens, workdir=workdir)
            )
    return runs


def add_rows(
    result: Result, tenants: int, runs: dict[str, list[RunResult]], *, target: bool
) -> None:
    peak = {name: statistics.median(r.peak_rss_anon_bytes for r in rs) for name, rs in runs.items()}
    rate = {name: statistics.median(r.throughput for r in rs) for name, rs in runs.items()}
    for setup in SETUPS:
        ok_memory = peak[setup.name] <= TARGET_MIB * 1024 * 1024
        result.add(
            f"N={tenants} {setup.name}: peak RssAnon per backend (median of {RUNS})",
            mib(int(peak[setup.name])),
            "MiB",
            target=f"<= {TARGET_MIB:.0f} MiB" if target and setup.bound else "",
            status=pass_fail(ok_memory) if target and setup.bound else "",
        )
        result.add(
            f"N={tenants} {setup.name}: throughput (median of {RUNS})",
            rate[setup.name],
            "req/s",
        )
    for via in ("direct", "pgbouncer"):
        bound, unbound = rate[f"{via}, bound"], rate[f"{via}, no bound"]
        ratio = bound / unbound if unbound else 0.0
        result.add(
            f"N={tenants} {via}: throughput with the bound / without",
            ratio * 100,
            "%",
            target=f">= {TARGET_THROUGHPUT * 100:.0f} %" if target else "",
            status=pass_fail(ratio >= TARGET_THROUGHPUT) if target else "",
        )


def main() -> int:
    output = output_path(__doc__ or "")
    workdir = Path(tempfile.mkdtemp(prefix="verdant-tenant-memory-"))
    workdir.chmod(0o755)  # PgBouncer runs as postgres and reads its ini here
    result = Result(
        benchmark="tenant_memory",
        details={
            "tenants": TENANTS,
            "small_tenants": SMALL_TENANTS,
            "runs": RUNS,
            "seconds_per_run": SECONDS,
            "gunicorn_workers": WORKERS,
            "gunicorn_threads": THREADS,
            "clients": CLIENTS,
            "bound": BOUND,
            "source_database": SOURCE_DATABASE or None,
            "load_average_start": os.getloadavg(),
            "workdir": str(workdir),
        },
    )
    os.environ.setdefault("DEBUG", "false")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # Tokens are minted once, before the runs: they must outlive every run.
    os.environ["JWT_ACCESS_MINUTES"] = "600"
    # BENCH_DATABASE_TAG: a second run on the same server gets its own database
    # (verdant_bench_tenant_memory_<tag>) instead of dropping the first one's.
    tag = os.environ.get("BENCH_DATABASE_TAG", "").strip()
    with bench_database(f"tenant_memory_{tag}" if tag else "tenant_memory") as database_url:
        if SOURCE_DATABASE:
            copy_source_database(database_url, SOURCE_DATABASE)
        django_setup(SETTINGS)
        tenants_ready(TENANTS, database_url)
        measured: dict[str, Any] = {}
        counts = [n for n in (SMALL_TENANTS, TENANTS) if n > 0]
        for tenants in sorted(set(counts)):
            runs = measure(tenants, database_url=database_url, workdir=workdir)
            # The small count is reported without a target (issue 20: "without targeting it").
            add_rows(result, tenants, runs, target=tenants == TENANTS and tenants != SMALL_TENANTS)
            measured[str(tenants)] = {name: [vars(r) for r in rs] for name, rs in runs.items()}
        result.details["runs_detail"] = measured
        result.details["load_average_end"] = os.getloadavg()
    result.write(output)
    for row in result.rows:
        sys.stdout.write(
            f"{row.metric}: {row.value:.1f} {row.unit} {row.target} {row.status}\n".rstrip() + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
