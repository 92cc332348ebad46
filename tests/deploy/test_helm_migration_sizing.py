"""The migration Job's parallelism and deadline, sized by the chart from the tenant count and the
measured seconds per schema (docs/operations.md, "Migrations at scale"), and --continue-on-error."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.deploy.chart import render


def _job(values: dict[str, Any] | None) -> dict[str, Any]:
    (job,) = [m for m in render(values) if m["kind"] == "Job"]
    return job


def _tenant_step(job: dict[str, Any]) -> list[str]:
    (container,) = [
        c
        for c in job["spec"]["template"]["spec"]["initContainers"]
        if c["name"] == "migrate-tenants"
    ]
    return list(container["command"])


def _parallel(job: dict[str, Any]) -> int:
    command = _tenant_step(job)
    return int(command[command.index("--parallel") + 1])


def test_without_a_tenant_count_the_given_values_hold() -> None:
    job = _job({"migrations": {"parallel": 6, "activeDeadlineSeconds": 5400}})
    assert _parallel(job) == 6
    assert job["spec"]["activeDeadlineSeconds"] == 5400
    assert "--continue-on-error" not in _tenant_step(job)


@pytest.mark.parametrize(
    ("tenants", "per_schema", "window", "max_parallel"),
    [
        (10_000, 1.5, 1800, 16),  # the target: 9 workers, ~42 min deadline
        (10_000, 1.5, 900, 16),  # a tighter window needs more workers
        (10_000, 1.5, 600, 16),  # ... more than allowed: capped, the deadline grows instead
        (2_000, 1.44, 1800, 16),
        (50, 1.5, 1800, 16),  # a small fleet: one worker
    ],
)
def test_parallel_and_deadline_follow_the_documented_formulas(
    tenants: int, per_schema: float, window: int, max_parallel: int
) -> None:
    sizing = {
        "tenants": tenants,
        "secondsPerSchema": per_schema,
        "windowSeconds": window,
        "maxParallel": max_parallel,
        "fixedSeconds": 300,
        "safety": 1.5,
    }
    job = _job({"migrations": {"sizing": sizing}})
    parallel = max(1, min(math.ceil(tenants * per_schema / window), max_parallel))
    deadline = math.ceil(300 + math.ceil(tenants / parallel) * per_schema * 1.5)
    assert _parallel(job) == parallel
    assert job["spec"]["activeDeadlineSeconds"] == max(60, deadline)
    # The tenant step fits the deadline with the safety factor's headroom.
    assert math.ceil(tenants / parallel) * per_schema < job["spec"]["activeDeadlineSeconds"] - 300


def test_ten_thousand_tenants_fit_a_deploy_window() -> None:
    job = _job({"migrations": {"sizing": {"tenants": 10_000}}})
    assert _parallel(job) == 9  # ceil(10,000 x 1.5 s / 1,800 s)
    assert (
        job["spec"]["activeDeadlineSeconds"] == 2_802
    )  # 300 + ceil(10,000 / 9) = 1,112 rounds x 1.5 s x 1.5


def test_continue_on_error_reaches_the_tenant_step() -> None:
    job = _job({"migrations": {"continueOnError": True}})
    assert _tenant_step(job)[-1] == "--continue-on-error"


@pytest.mark.parametrize(
    "sizing",
    [{"tenants": -1}, {"secondsPerSchema": 0}, {"maxParallel": 0}, {"safety": 0.5}, {"x": 1}],
)
def test_the_schema_refuses_bad_sizing(sizing: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="sizing"):
        render({"migrations": {"sizing": sizing}})
