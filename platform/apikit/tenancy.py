"""Typed access to django-tenants' per-connection tenant state (the stubs do not know it)."""

from typing import Any, cast

from django.db import connection


class TenantRequiredError(RuntimeError):
    """Tenant-only work (a reminder run, a tenant-only task) was started in the public schema or
    with no schema at all: it is refused before it reads or writes anything (fail closed)."""


def current_schema_name() -> str:
    return cast(str, connection.schema_name)  # type: ignore[attr-defined]


def tenant_schema_required(*, what: str) -> str:
    """The active tenant's schema name; ``TenantRequiredError`` naming ``what`` in public."""
    schema = current_schema_name()
    if not schema or schema == "public":
        raise TenantRequiredError(f"{what} runs in a tenant schema, never in public.")
    return schema


def activate_public() -> None:
    connection.set_schema_to_public()  # type: ignore[attr-defined]


def activate_tenant(tenant: Any) -> None:
    connection.set_tenant(tenant)  # type: ignore[attr-defined]
