"""Per-request platform overhead: GET /api/v1/auth/me/ through the full stack (tenant routing,
JWT, throttles; audit is off for this endpoint) versus the same JSON from a plain Django project
with no tenancy, auth or throttles. Both run in-process through their WSGI application (no
network), each in its own process, alternating, in one run.

Targets (API platform issue): overhead <= 1.5 ms per request at p50, and <= 2 database statements
+ 1 Redis round trip per request.

    python -m tests.benchmarks.bench_request_overhead --output result.json
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.benchmarks.common import (
    ROOT,
    Result,
    bench_database,
    django_setup,
    migrate_public_schema,
    output_path,
    pass_fail,
    say,
)

ROUNDS = 3
REQUESTS = 3000
OVERHEAD_TARGET_MS = 1.5
PASSWORD = "Bench-overhead-2026"
# The parent issues the token, the workers verify it: both must sign with the same key.
SECRET_KEY = "bench-overhead-" + "k" * 40


def _worker(settings_module: str, host: str, token: str | None) -> dict[str, Any]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY,
        "BASE_DOMAIN": "bench.test",
    }
    command = [
        sys.executable,
        "-m",
        "tests.benchmarks.overhead_worker",
        "--host",
        host,
        "--requests",
        str(REQUESTS),
    ]
    if token:
        command += ["--token", token]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{settings_module} worker failed:\n{result.stderr[-3000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def _prepare() -> tuple[str, str]:
    """A provisioned tenant and an access token for its admin."""
    os.environ["BASE_DOMAIN"] = "bench.test"
    os.environ["SECRET_KEY"] = SECRET_KEY
    django_setup("settings.dev")
    migrate_public_schema()
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from accounts.tokens import token_pair_issue
    from tenants.models import Plan
    from tenants.services import tenant_provision

    # Throttles are on (one Redis round trip per request), with limits the run cannot reach.
    unlimited = 10**9
    Plan.objects.create(
        name="bench-unlimited",
        requests_per_minute=unlimited,
        user_burst_per_minute=unlimited,
        user_sustained_per_day=unlimited,
    )
    provisioned = tenant_provision(
        slug="overhead",
        name="Overhead",
        kind="mixed",
        admin_email="admin@bench.example",
        admin_password=PASSWORD,
        plan_name="bench-unlimited",
    )
    with tenant_context(provisioned.tenant):
        token = token_pair_issue(user=User.objects.get()).access
    return provisioned.domain, token


def main() -> None:
    output = output_path(__doc__ or "")
    result = Result(benchmark="request_overhead")
    with bench_database("request_overhead"):
        host, token = _prepare()
        full: list[dict[str, Any]] = []
        plain: list[dict[str, Any]] = []
        for round_number in range(1, ROUNDS + 1):
            say(f"round {round_number}/{ROUNDS}: full stack, {REQUESTS} requests")
            full.append(_worker("settings.dev", host, token))
            say(f"round {round_number}/{ROUNDS}: plain Django, {REQUESTS} requests")
            plain.append(_worker("tests.benchmarks.plain_settings", host, None))
    full_p50 = sorted(run["p50_ms"] for run in full)[ROUNDS // 2]
    plain_p50 = sorted(run["p50_ms"] for run in plain)[ROUNDS // 2]
    overhead = full_p50 - plain_p50
    statements = len(full[-1]["statements"])
    redis_commands = int(full[-1]["redis_commands"])
    result.add("full stack p50", full_p50, "ms")
    result.add("plain Django p50", plain_p50, "ms")
    result.add(
        "platform overhead p50",
        overhead,
        "ms",
        target=f"<= {OVERHEAD_TARGET_MS} ms",
        status=pass_fail(overhead <= OVERHEAD_TARGET_MS),
    )
    result.add(
        "database round trips per request (health check included)",
        statements,
        "",
        target="<= 2",
        status=pass_fail(statements <= 2),
    )
    result.add(
        "Redis round trips per request",
        redis_commands,
        "",
        target="<= 1",
        status=pass_fail(redis_commands <= 1),
    )
    result.details = {"full": full, "plain": plain, "rounds": ROUNDS, "requests": REQUESTS}
    result.write(output)


if __name__ == "__main__":
    main()
