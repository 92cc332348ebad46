"""Typed access to django-tenants' per-connection tenant state (the stubs do not know it)."""

from typing import Any, cast

from django.db import connection


def current_schema_name() -> str:
    return cast(str, connection.schema_name)  # type: ignore[attr-defined]


def activate_public() -> None:
    connection.set_schema_to_public()  # type: ignore[attr-defined]


def activate_tenant(tenant: Any) -> None:
    connection.set_tenant(tenant)  # type: ignore[attr-defined]
