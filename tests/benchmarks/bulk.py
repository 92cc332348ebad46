"""Many tenants fast, for benchmarks that need a populated database but do not time its creation:
the template's script (tenants.template_script, what provisioning replays) run once per schema on
one autocommit connection, then each tenant's row, primary domain and tenant_admin in bulk (one
password hash reused for all)"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tenants.models import Tenant

ADMIN_PASSWORD = "Bench-bulk-tenants-2026"
LOCK_TABLE_RETRIES = 30
LOCK_TABLE_RETRY_SECONDS = 10.0


def create_schemas(database_url: str, schemas: list[str]) -> None:
    """Replay the template's script (tenants.template_script) once per schema."""
    import psycopg
    from django.conf import settings

    from tenants.template_script import dump_template, rename_schema

    template = settings.TENANT_TEMPLATE_SCHEMA
    dump = dump_template()
    if dump is None:
        raise RuntimeError("pg_dump of the template failed; see the log")
    # Autocommit: each schema's script is one implicit transaction, so its locks (one per table,
    # index and sequence) are released before the next; many schemas in one transaction run out of
    # max_locks_per_transaction.
    with psycopg.connect(database_url, autocommit=True) as conn:
        for schema in schemas:
            script = rename_schema(dump, source=template, target=schema).encode()
            for attempt in range(LOCK_TABLE_RETRIES + 1):
                try:
                    conn.execute(script)
                    break
                except psycopg.errors.OutOfMemory:
                    # The lock table is shared by the whole server: another session holding
                    # thousands of locks (a whole-database pg_dump, as tenant_scale attempts)
                    # starves this one-schema transaction for a while. It rolled back; retry.
                    if attempt == LOCK_TABLE_RETRIES:
                        raise
                    time.sleep(LOCK_TABLE_RETRY_SECONDS)


def _index_counts(schemas: list[str]) -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT schemaname, count(*) FROM pg_indexes WHERE schemaname = ANY(%s) GROUP BY 1",
            [schemas],
        )
        return dict(cursor.fetchall())


def verify_like_template(schemas: list[str]) -> None:
    """Same applied migrations, columns and number of indexes as the template, or raise."""
    from django.conf import settings

    from tenants.migration_state import drift_report

    template = settings.TENANT_TEMPLATE_SCHEMA
    drifting = drift_report(template_schema=template, tenant_schemas=schemas)
    counts = _index_counts([template, *schemas])
    drifting.update(
        {
            schema: ["index count differs"]
            for schema in schemas
            if counts.get(schema) != counts[template]
        }
    )
    if drifting:
        raise RuntimeError(
            f"{len(drifting)} bulk-created schema(s) differ from the template: {drifting}"
        )


def create_tenants(
    database_url: str,
    slugs: list[str],
    progress: Callable[[str], None] | None = None,
) -> float:
    """Schemas, tenant rows, domains and admins for ``slugs``; returns the seconds it took."""
    from django.contrib.auth.hashers import make_password
    from django.db import transaction

    from tenants.models import Domain, Plan, Tenant
    from tenants.services import DEFAULT_PLAN, schema_name_for, tenant_host

    started = time.perf_counter()
    create_schemas(database_url, [schema_name_for(slug) for slug in slugs])
    plan = Plan.objects.get(name=DEFAULT_PLAN)
    with transaction.atomic():
        tenants = Tenant.objects.bulk_create(
            [
                Tenant(
                    slug=slug,
                    schema_name=schema_name_for(slug),
                    name=f"Bench {slug}",
                    kind="mixed",
                    plan=plan,
                    ready=True,
                )
                for slug in slugs
            ]
        )
        Domain.objects.bulk_create(
            [
                Domain(domain=tenant_host(tenant.slug), tenant=tenant, is_primary=True)
                for tenant in tenants
            ]
        )
    _create_admins(tenants, make_password(ADMIN_PASSWORD))
    verify_like_template([tenant.schema_name for tenant in tenants])
    if progress is not None:
        progress(f"{len(slugs)} tenants created in {time.perf_counter() - started:.1f} s")
    return time.perf_counter() - started


def _create_admins(tenants: list[Tenant], encoded_password: str) -> None:
    from django.db import transaction
    from django_tenants.utils import tenant_context

    from accounts.models import User
    from accounts.roles import Role

    with transaction.atomic():
        for tenant in tenants:
            with tenant_context(tenant):
                User.objects.create(
                    email=f"admin@{tenant.slug}.test",
                    role=Role.TENANT_ADMIN,
                    is_active=True,
                    is_staff=True,
                    password=encoded_password,
                    full_name=f"Bench {tenant.slug} admin",
                )
