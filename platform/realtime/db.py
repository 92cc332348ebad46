"""The one way realtime code touches the database: ``tenant_call`` / ``public_call``.

Channels (like daphne and uvicorn) runs every ``database_sync_to_async`` call of a process on ONE
shared thread with ONE Django connection, and django-tenants keeps the tenant on that connection.
A ``schema_context`` entered in async code around an ``await`` therefore guards nothing: the
shared thread may run another consumer's call (another tenant) in between, and the query after
the ``await`` reads whatever schema that call left behind (django-tenants #1143). So the tenant
is entered INSIDE the sync function, on the thread that runs the queries, for each call; async
code never holds a schema or tenant context (tests/realtime/test_no_async_tenant_context.py).

``expected_schema`` carries, per asyncio task, the schema the caller works for (a consumer sets
it once its tenant is known; the relay for each tenant it reads). asgiref copies context
variables into the sync thread, so a check on the connection (the tests' ``execute_wrapper``)
can compare every query's schema with it; ``tenant_call`` refuses a tenant other than it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django_tenants.utils import schema_context, tenant_context

T = TypeVar("T")

expected_schema: ContextVar[str | None] = ContextVar("realtime_expected_schema", default=None)


class TenantMismatchError(RuntimeError):
    """A caller working for one tenant asked for another tenant's data: a bug, never served."""


def _in_tenant(tenant: Any, fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    with tenant_context(tenant):
        return fn(**kwargs)


def _in_public(fn: Callable[..., T], kwargs: dict[str, Any]) -> T:
    with schema_context("public"):
        return fn(**kwargs)


async def tenant_call(tenant: Any, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """``fn(**kwargs)`` on the database thread, in ``tenant``'s schema for exactly that call."""
    expected = expected_schema.get()
    if expected is not None and expected != tenant.schema_name:
        raise TenantMismatchError(f"{expected} asked for {tenant.schema_name}")
    result: T = await database_sync_to_async(_in_tenant)(tenant, fn, kwargs)
    return result


async def public_call(fn: Callable[..., T], /, **kwargs: Any) -> T:
    """``fn(**kwargs)`` on the database thread in the public schema (host routing)."""
    result: T = await database_sync_to_async(_in_public)(fn, kwargs)
    return result
