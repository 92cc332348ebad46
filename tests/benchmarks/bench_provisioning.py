"""Tenant provisioning time with the full schema: clone from the template versus replaying every
migration (what django-tenants does without a template), measured alternately in one run, first
in a nearly empty database, then again with 200 tenants present.

Target (Foundation issue): clone <= 0.5 s per tenant and >= 5x faster than migrations.

    python -m tests.benchmarks.bench_provisioning --output result.json
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from tests.benchmarks.bulk import create_tenants
from tests.benchmarks.common import (
    Result,
    bench_database,
    django_setup,
    migrate_public_schema,
    output_path,
    pass_fail,
    say,
    summarize,
    timed,
)

ROUNDS = 10
SCALE_TENANTS = 200
SCALE_ROUNDS = 5
CLONE_TARGET_SECONDS = 0.5
SPEEDUP_TARGET = 5.0
ADMIN_PASSWORD = "Bench-provisioning-2026"


class StepTimes:
    """Wall time spent inside chosen functions, per step name, while ``watch`` is active."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def watch(self, step: str, owner: Any, attribute: str) -> Iterator[None]:
        original = getattr(owner, attribute)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[step].append(time.perf_counter() - started)

        setattr(owner, attribute, wrapper)
        try:
            yield
        finally:
            setattr(owner, attribute, original)


def provision_by_clone(slug: str) -> None:
    from tenants.services import tenant_provision

    tenant_provision(
        slug=slug,
        name=f"Bench {slug}",
        kind="mixed",
        admin_email=f"admin@{slug}.test",
        admin_password=ADMIN_PASSWORD,
    )


def provision_by_migrations(slug: str, steps: StepTimes) -> None:
    """django-tenants without a template: tenant row, CREATE SCHEMA, migrate_schemas for that
    schema, then the domain and the first tenant_admin, committed once like the clone path."""
    from django.core.management import call_command
    from django.db import connection, transaction
    from django_tenants.utils import quote_schema_name, tenant_context

    from accounts.roles import Role
    from accounts.services import user_create
    from tenants.models import Domain, Plan, Tenant
    from tenants.services import DEFAULT_PLAN, schema_name_for, tenant_host

    with transaction.atomic():
        tenant = Tenant.objects.create(
            slug=slug,
            schema_name=schema_name_for(slug),
            name=f"Bench {slug}",
            kind="mixed",
            plan=Plan.objects.get(name=DEFAULT_PLAN),
        )
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {quote_schema_name(tenant.schema_name)}")
        steps.seconds["migrate_schemas"].append(
            timed(
                lambda: call_command(
                    "migrate_schemas",
                    tenant=True,
                    schema_name=tenant.schema_name,
                    interactive=False,
                    verbosity=0,
                )
            )
        )
        Domain.objects.create(domain=tenant_host(slug), tenant=tenant, is_primary=True)
        with tenant_context(tenant):
            user_create(
                email=f"admin@{slug}.test",
                role=Role.TENANT_ADMIN,
                password=ADMIN_PASSWORD,
                is_active=True,
                full_name=f"Bench {slug} admin",
            )
        tenant.ready = True
        tenant.save(update_fields=["ready"])


def template_size() -> dict[str, int]:
    """Tables in the template schema and migrations it has applied: the "full schema"."""
    from django.conf import settings
    from django.db import connection

    from tenants.migration_state import applied_migrations

    schema = settings.TENANT_TEMPLATE_SCHEMA
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [schema]
        )
        row = cursor.fetchone()
    return {
        "tables": int(row[0]) if row else 0,
        "migrations": len(applied_migrations([schema])[schema]),
    }


def fresh_connection() -> None:
    """Each provisioning starts on a new database session, as a fresh provision_tenant command
    would: in one long-lived session every clone was slower than the one before."""
    from django.db import connection

    connection.close()
    connection.ensure_connection()


def timed_fresh(action: Callable[[], object]) -> float:
    fresh_connection()
    return timed(action)


@contextlib.contextmanager
def watch_steps(steps: StepTimes) -> Iterator[None]:
    """Time the steps that explain the totals: the clone itself (including re-installing the
    clone function), password hashing, and the "any migrations pending?" checks of
    template_schema_ensure (clone path) and the project's migrate_schemas executor."""
    import django.contrib.auth.base_user as base_user
    from django_tenants.clone import CloneSchema

    import tenants.migration_executor
    import tenants.services

    with contextlib.ExitStack() as stack:
        stack.enter_context(steps.watch("clone_schema", CloneSchema, "clone_schema"))
        stack.enter_context(
            steps.watch("clone_function_install", CloneSchema, "_create_clone_schema_function")
        )
        stack.enter_context(steps.watch("password_hash", base_user, "make_password"))
        stack.enter_context(
            steps.watch("pending_check_template", tenants.services, "schemas_behind")
        )
        stack.enter_context(
            steps.watch("pending_check_executor", tenants.migration_executor, "schemas_behind")
        )
        yield


@dataclass(frozen=True)
class Phase:
    """Alternating clone / migrations rounds with ``tenants_before`` tenants already present."""

    label: str
    tenants_before: int
    samples: dict[str, list[float]]
    step_means: dict[str, float]


def tenant_count() -> int:
    from tenants.models import Tenant

    return Tenant.objects.filter(is_template=False).count()


def run_phase(label: str, rounds: int) -> Phase:
    tenants_before = tenant_count()
    steps = StepTimes()
    samples: dict[str, list[float]] = {"clone": [], "migrations": []}
    with watch_steps(steps):
        for index in range(rounds):
            slug = f"{label}-{index:03d}"
            samples["clone"].append(timed_fresh(partial(provision_by_clone, f"c-{slug}")))
            samples["migrations"].append(
                timed_fresh(partial(provision_by_migrations, f"m-{slug}", steps))
            )
            say(
                f"{label} round {index + 1}/{rounds}: clone {samples['clone'][-1]:.3f} s, "
                f"migrations {samples['migrations'][-1]:.3f} s"
            )
    step_means = {step: summarize(values).mean for step, values in steps.seconds.items()}
    return Phase(label=label, tenants_before=tenants_before, samples=samples, step_means=step_means)


def add_phase_rows(result: Result, phase: Phase, prefix: str) -> None:
    clone, migrations = summarize(phase.samples["clone"]), summarize(phase.samples["migrations"])
    speedup = migrations.p50 / clone.p50
    result.add(
        f"{prefix}clone: p50 per tenant",
        clone.p50,
        "s",
        target=f"<= {CLONE_TARGET_SECONDS:g} s",
        status=pass_fail(clone.p50 <= CLONE_TARGET_SECONDS),
    )
    result.add(f"{prefix}clone: p95 per tenant", clone.p95, "s")
    result.add(f"{prefix}clone: mean per tenant", clone.mean, "s")
    result.add(f"{prefix}migrations: p50 per tenant", migrations.p50, "s")
    result.add(f"{prefix}migrations: p95 per tenant", migrations.p95, "s")
    result.add(f"{prefix}migrations: mean per tenant", migrations.mean, "s")
    result.add(
        f"{prefix}speed-up (migrations p50 / clone p50)",
        speedup,
        "x",
        target=f">= {SPEEDUP_TARGET:g}x",
        status=pass_fail(speedup >= SPEEDUP_TARGET),
    )
    result.details["phases"][phase.label] = {
        "tenants_before": phase.tenants_before,
        "rounds": len(phase.samples["clone"]),
        "samples_seconds": phase.samples,
        "summaries": {"clone": vars(clone), "migrations": vars(migrations)},
        "step_mean_seconds": phase.step_means,
    }


def fill_database(database_url: str, total: int) -> float:
    """Add bench tenants (not timed as provisioning) until ``total`` tenants exist."""
    missing = total - tenant_count()
    slugs = [f"fill-{index:04d}" for index in range(max(0, missing))]
    return create_tenants(database_url, slugs, progress=say) if slugs else 0.0


def main() -> int:
    output = output_path(__doc__ or "")
    result = Result(benchmark="provisioning", details={"phases": {}})
    with bench_database("provisioning") as database_url:
        django_setup("settings.dev")
        from tenants.services import template_schema_ensure

        say("migrating the public schema and the template (not timed)")
        migrate_public_schema()
        template_schema_ensure()
        result.details["template"] = size = template_size()
        say(f"template: {size['tables']} tables, {size['migrations']} migrations")
        provision_by_clone("warm-clone")
        provision_by_migrations("warm-migrate", StepTimes())
        say(f"{ROUNDS} tenants per path, alternating, in a nearly empty database")
        add_phase_rows(result, run_phase("small", ROUNDS), "")
        say(f"filling the database to {SCALE_TENANTS} tenants (not timed)")
        result.details["fill_seconds"] = fill_database(database_url, SCALE_TENANTS)
        say(f"{SCALE_ROUNDS} tenants per path, alternating, with {SCALE_TENANTS} tenants present")
        add_phase_rows(result, run_phase("scale", SCALE_ROUNDS), f"with {SCALE_TENANTS} tenants, ")
    result.write(output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
