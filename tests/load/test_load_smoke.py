"""Smoke test of the load and fault harness (tests/load/run.py): a few seconds of mixed traffic
against its own private stack with Redis stopped mid-run. It runs in `make test`; deselect it
with `-m "not load"`. The full run (60 s, all three faults) is `make load`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.load, pytest.mark.slow]


def test_harness_short_run_with_redis_outage_passes_every_check(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    completed = subprocess.run(
        [
            sys.executable, "-m", "tests.load.run", "--seconds", "6", "--threads", "3",
            "--faults", "redis", "--redis-down", "3", "--reminders", "4", "--json", str(out),
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-6000:] + completed.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["total_requests"] > 20
    failed = [check for check in report["checks"] if not check["ok"]]
    assert failed == []
    names = {check["name"] for check in report["checks"]}
    assert "zero 5xx outside the PostgreSQL restart window" in names
    assert "Redis down: API keeps serving" in names
    assert report["faults"]["redis"]["served_2xx"] > 0
    assert report["reminders"]["provider"]["duplicates"] == 0
    assert report["reminders"]["due_rows"] == report["reminders"]["due_booked"] > 0
