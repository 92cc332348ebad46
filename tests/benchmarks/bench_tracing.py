"""Tracing overhead with the official OpenTelemetry packages (issue 22, item 2): throughput of a
tenant list endpoint in an uninstrumented build (configure_tracing never called), with tracing
configured but off, with the Helm chart's default head sampling (parentbased_traceidratio 0.1),
and with every request sampled, all exporting over OTLP/HTTP to a local receiver.

    make bench BENCH_ARGS=tracing

Each measurement runs in a fresh process (tracing is process-wide), through the WSGI entry point
(settings/wsgi.py) and the whole middleware stack, with Django's test client as the caller: no
network, so what is measured is the server's own work. Modes alternate round by round so drift
in the machine's load hits all of them alike (the order rotates every round, so no mode is always
first); the figure per mode is the median of its rounds.

The endpoint is /api/v1/clinical/patients/ when the clinical app serves it, else
/api/v1/users/ (a cursor-paginated tenant list with authentication, role check and throttle,
the same path a patient list takes). Either way 50 rows are listed per request.

Two throughputs per run: wall-clock requests per second, and requests per CPU second of the
serving process (all its threads, the exporter's included). On a shared machine the wall figure
swings with other processes' load; the CPU figure counts only the work tracing can add, so the
targets are judged on it, paired round by round, against the uninstrumented build: off costs at
most 1 %, the chart's default sampling at most 3 %; 100 % sampling is reported with no target,
with a short cProfile of one 100 % run (the request thread only: the exporter's thread is in
the CPU figure, not in the profile) saying where the time goes.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import statistics
import subprocess
import sys
import time
from typing import Any

from tests.benchmarks.common import (
    Result,
    bench_database,
    django_setup,
    migrate_public_schema,
    output_path,
    pass_fail,
    say,
)

SETTINGS = "settings.test"
SLUG = "bench-tracing"
HOST = f"{SLUG}.verdant.test"
ADMIN_EMAIL = "admin@bench-tracing.example"
ADMIN_PASSWORD = "bench-Password-1"
PLAN = "bench-unthrottled"
ROWS = 50
ROUNDS = int(os.environ.get("BENCH_TRACING_ROUNDS", "12"))
SECONDS = float(os.environ.get("BENCH_TRACING_SECONDS", "4"))
WARMUP_REQUESTS = 30
PROFILE_SECONDS = float(os.environ.get("BENCH_TRACING_PROFILE_SECONDS", "4"))
MODES = ("uninstrumented", "off", "sampled", "full")
# "sampled": the Helm chart's default head sampling (helm/verdant/values.yaml otel.sampler,
# samplerArg), what a deployment runs; "full" records and exports every request.
SAMPLED_ENV = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
FULL_ENV = {"OTEL_TRACES_SAMPLER": "parentbased_always_on"}
TRACED_MODES = ("sampled", "full")
# The targets, throughput loss against the uninstrumented build (CPU, paired).
MAX_LOSS_OFF = 0.01
MAX_LOSS_SAMPLED = 0.03
PROFILE_TOP = 25


def seed() -> None:
    """A tenant on an unthrottled plan with ROWS users (and patients, if the app exists)."""
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from accounts.roles import Role
    from tenants.models import Plan
    from tenants.services import template_schema_ensure, tenant_provision

    Plan.objects.get_or_create(
        name=PLAN,
        defaults={
            "requests_per_minute": 10_000_000,
            "user_burst_per_minute": 10_000_000,
            "user_sustained_per_day": 100_000_000,
        },
    )
    template_schema_ensure()
    tenant = tenant_provision(
        slug=SLUG,
        name="Bench tracing",
        kind="mixed",
        admin_email=ADMIN_EMAIL,
        admin_password=ADMIN_PASSWORD,
        plan_name=PLAN,
    ).tenant
    with tenant_context(tenant):
        User.objects.bulk_create(
            User(email=f"staff{index}@bench.example", role=Role.NURSE, is_active=True)
            for index in range(ROWS - 1)
        )
        if patients_served():
            seed_patients()


def patients_served() -> bool:
    from django.urls import Resolver404, resolve

    try:
        resolve("/api/v1/clinical/patients/")
    except Resolver404:
        return False
    return True


def seed_patients() -> None:
    import datetime

    from clinical.models import Facility, Patient

    facility = Facility.objects.create(name="Bench clinic", code="BENCH", timezone="UTC")
    Patient.objects.bulk_create(
        Patient(
            mrn=f"MRN{index:05d}",
            given_name=f"Given{index}",
            family_name=f"Family{index}",
            birth_date=datetime.date(1980, 1, 1) + datetime.timedelta(days=index),
            phone=f"+1555000{index:04d}",
            facility=facility,
        )
        for index in range(ROWS)
    )


def list_path() -> str:
    if patients_served():
        return f"/api/v1/clinical/patients/?page_size={ROWS}"
    return f"/api/v1/users/?page_size={ROWS}"


def access_token() -> str:
    from django.test import Client

    response = Client(HTTP_HOST=HOST).post(
        "/api/v1/auth/token/",
        {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    return str(response.json()["access"])


def child(mode: str, seconds: float, *, profile: bool = False) -> dict[str, Any]:
    """One measurement in this process; prints nothing but the JSON result. With ``profile``
    the loop runs under cProfile and the result says where its time went instead."""
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    import settings

    if mode == "uninstrumented":
        from django.core.wsgi import get_wsgi_application

        get_wsgi_application()
    else:
        import settings.wsgi  # noqa: F401  (calls configure_tracing)
    from django.test import Client

    from observability.tracing import tracing_enabled

    client = Client(HTTP_HOST=HOST)
    # One token for every run: the login throttle would refuse a login per run.
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {os.environ['BENCH_TOKEN']}"
    path = list_path()
    for _ in range(WARMUP_REQUESTS):
        assert client.get(path).status_code == 200
    profiler = cProfile.Profile() if profile else None
    count, started, cpu_started = 0, time.perf_counter(), time.process_time()
    deadline = started + seconds
    if profiler is not None:
        profiler.enable()
    while time.perf_counter() < deadline:
        response = client.get(path)
        assert response.status_code == 200, response.content
        count += 1
    if profiler is not None:
        profiler.disable()
    elapsed = time.perf_counter() - started
    # CPU time of this process, every thread included (the exporter's too).
    cpu = time.process_time() - cpu_started
    measured: dict[str, Any] = {
        "mode": mode,
        "path": path,
        "tracing_enabled": tracing_enabled(),
        "requests": count,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "rps": count / elapsed,
        "cpu_rps": count / cpu,
    }
    if profiler is not None:
        measured["profile"] = where_the_time_goes(pstats.Stats(profiler), requests=count)
    return measured


# Where a function's own time is counted: the first matching fragment of its file's path.
_AREAS = (
    ("opentelemetry/instrumentation/django", "otel: django instrumentation"),
    ("opentelemetry/instrumentation/wsgi", "otel: django instrumentation"),
    ("opentelemetry/instrumentation/dbapi", "otel: psycopg instrumentation"),
    ("opentelemetry/instrumentation/psycopg", "otel: psycopg instrumentation"),
    ("opentelemetry/instrumentation/redis", "otel: redis instrumentation"),
    ("opentelemetry/instrumentation", "otel: instrumentation (shared)"),
    ("opentelemetry/sdk", "otel: sdk (spans, attributes, processor)"),
    ("opentelemetry/exporter", "otel: exporter"),
    ("opentelemetry/semconv", "otel: instrumentation (shared)"),
    ("opentelemetry/util", "otel: instrumentation (shared)"),
    ("opentelemetry", "otel: api, context"),
    ("/wrapt/", "otel: wrapt"),
    ("/django/", "django"),
    ("/rest_framework", "drf"),
    ("/psycopg", "psycopg"),
    ("/redis/", "redis-py"),
    ("/observability/", "verdant: observability"),
)


def where_the_time_goes(stats: pstats.Stats, *, requests: int) -> dict[str, Any]:
    """Own time per area (microseconds per request, share of the profiled total) and the
    OpenTelemetry functions with the most own time."""
    per_area: dict[str, float] = {}
    functions: list[tuple[float, int, str]] = []
    total = 0.0
    for (filename, line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        calls, own = row[1], row[2]
        total += own
        area = next((label for fragment, label in _AREAS if fragment in filename), "other")
        per_area[area] = per_area.get(area, 0.0) + own
        if area.startswith("otel"):
            short = filename.split("site-packages/")[-1]
            functions.append((own, calls, f"{short}:{line} {name}"))
    functions.sort(reverse=True)
    per_request = max(requests, 1)
    return {
        "requests": requests,
        "profiled_us_per_request": total / per_request * 1e6,
        "areas": {
            area: {
                "us_per_request": round(own / per_request * 1e6, 1),
                "share": round(own / total, 4) if total else 0.0,
            }
            for area, own in sorted(per_area.items(), key=lambda item: -item[1])
        },
        "otel_share": round(
            sum(own for area, own in per_area.items() if area.startswith("otel")) / total, 4
        )
        if total
        else 0.0,
        "top_otel_functions": [
            {
                "function": where,
                "us_per_request": round(own / per_request * 1e6, 2),
                "calls_per_request": round(calls / per_request, 2),
            }
            for own, calls, where in functions[:PROFILE_TOP]
        ],
    }


def run_child(
    mode: str, receiver_endpoint: str, *, seconds: float = SECONDS, profile: bool = False
) -> dict[str, Any]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
    env["LOG_LEVEL"] = "WARNING"  # the request line is the same in every mode; keep it quiet
    if mode in TRACED_MODES:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver_endpoint
        env.update(SAMPLED_ENV if mode == "sampled" else FULL_ENV)
    elif mode == "off":
        # Configured as in production, switched off: the entry point runs configure_tracing.
        env["OTEL_SDK_DISABLED"] = "true"
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver_endpoint
    command = [sys.executable, "-m", "tests.benchmarks.bench_tracing", "--child", mode]
    command += [str(seconds)] + (["--profile"] if profile else [])
    completed = subprocess.run(command, env=env, capture_output=True, check=False, timeout=600)
    if completed.returncode != 0:
        raise RuntimeError(f"{mode} run failed:\n{completed.stderr.decode(errors='replace')}")
    return dict(json.loads(completed.stdout.decode().strip().splitlines()[-1]))


def main() -> int:
    output = output_path(__doc__ or "")
    from tests.observability.otlp_receiver import running_receiver

    result = Result(benchmark="tracing")
    with bench_database("tracing"), running_receiver() as receiver:
        os.environ["JWT_ACCESS_MINUTES"] = "240"  # outlives every run
        django_setup(SETTINGS)
        migrate_public_schema()
        seed()
        os.environ["BENCH_TOKEN"] = access_token()
        from django.db import connections

        connections.close_all()
        runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
        raw: list[dict[str, Any]] = []
        for round_number in range(1, ROUNDS + 1):
            # Rotated every round: the first run of a round measured faster on this VM whatever
            # its mode, so a fixed order would bias one mode.
            shift = (round_number - 1) % len(MODES)
            for mode in MODES[shift:] + MODES[:shift]:
                measured = run_child(mode, receiver.endpoint)
                expected_enabled = mode in TRACED_MODES
                if measured["tracing_enabled"] is not expected_enabled:
                    raise RuntimeError(f"{mode}: tracing_enabled={measured['tracing_enabled']}")
                raw.append({"round": round_number, **measured})
                runs[mode].append(measured)
                say(
                    f"round {round_number} {mode}: {measured['rps']:.1f} req/s wall, "
                    f"{measured['cpu_rps']:.1f} req/CPU-s"
                )
        # Give the exporter's last batch time to land, then count what arrived.
        time.sleep(1)
        spans_received = len(receiver.spans())
        say(f"profiling one {PROFILE_SECONDS:.0f} s run of every request sampled")
        profiled = run_child("full", receiver.endpoint, seconds=PROFILE_SECONDS, profile=True)
        # And of the chart's default: nine requests in ten are not sampled, yet instrumented.
        say(f"profiling one {PROFILE_SECONDS:.0f} s run at the chart's default sampling")
        profiled_sampled = run_child(
            "sampled", receiver.endpoint, seconds=PROFILE_SECONDS, profile=True
        )

    def paired(metric: str, numerator: str, denominator: str) -> float:
        """Median over rounds of the ratio within a round: load that drifts between rounds
        cancels out, because each round measures every mode back to back."""
        return statistics.median(
            a[metric] / b[metric] for a, b in zip(runs[numerator], runs[denominator], strict=True)
        )

    for mode in MODES:
        result.add(
            f"{mode}: throughput (median, wall)",
            statistics.median(m["rps"] for m in runs[mode]),
            "req/s",
        )
        result.add(
            f"{mode}: throughput (median, per CPU second)",
            statistics.median(m["cpu_rps"] for m in runs[mode]),
            "req/s",
        )
    for mode, target in (("off", MAX_LOSS_OFF), ("sampled", MAX_LOSS_SAMPLED), ("full", None)):
        loss = 1 - paired("cpu_rps", mode, "uninstrumented")
        label = {
            "off": "off (configured, OTEL_SDK_DISABLED=true)",
            "sampled": "sampled (chart default, parentbased_traceidratio 0.1)",
            "full": "full (every request sampled)",
        }[mode]
        result.add(
            f"{label} vs uninstrumented: loss (wall, paired)",
            (1 - paired("rps", mode, "uninstrumented")) * 100,
            "%",
        )
        if target is None:
            result.add(f"{label} vs uninstrumented: loss (CPU, paired)", loss * 100, "%")
        else:
            result.add(
                f"{label} vs uninstrumented: loss (CPU, paired)",
                loss * 100,
                "%",
                target=f"<= {target * 100:.0f} %",
                status=pass_fail(loss <= target),
            )
    profile = profiled["profile"]
    result.add(
        "full: OpenTelemetry's share of the request thread's own time (cProfile)",
        profile["otel_share"] * 100,
        "%",
    )
    for area, figures in list(profile["areas"].items())[:8]:
        result.add(f"full, profiled: {area}", figures["us_per_request"], "µs/request")
    sampled_profile = profiled_sampled["profile"]
    result.add(
        "sampled: OpenTelemetry's share of the request thread's own time (cProfile)",
        sampled_profile["otel_share"] * 100,
        "%",
    )
    for area, figures in sampled_profile["areas"].items():
        if area.startswith(("otel", "verdant")):
            result.add(f"sampled, profiled: {area}", figures["us_per_request"], "µs/request")
    result.details = {
        "path": raw[0]["path"],
        "rows_per_request": ROWS,
        "rounds": ROUNDS,
        "seconds_per_run": SECONDS,
        "runs": raw,
        "spans_received": spans_received,
        "profile_of_full": profile,
        "profile_of_sampled": sampled_profile,
    }
    result.write(output)
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--child":
        measured = child(sys.argv[2], float(sys.argv[3]), profile="--profile" in sys.argv[4:])
        sys.stdout.write(json.dumps(measured) + "\n")
        sys.exit(0)
    sys.exit(main())
