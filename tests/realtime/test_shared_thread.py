"""The shared-thread trap (issue 18, item 2), in-process: Channels runs every
``database_sync_to_async`` call of a process on one thread with one connection, and
django-tenants keeps the tenant on that connection. Between two calls of a consumer working for
alpha, the test switches that very thread to beta (colliding ids and emails) — what another
consumer's call would leave behind. An ``execute_wrapper`` asserts on every query that the
connection's schema is the one the calling consumer works for (``realtime.db.expected_schema``,
a context variable asgiref carries into the thread).

The database thread reads COMMITTED rows on its own connection: the two tenants of
tests/conftest.py, seeded and committed once per run (a ``transactional_db`` flush would empty
the public schema's tenants for every other test)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.db import connection, connections

from accounts.models import User
from apikit.tenancy import current_schema_name
from realtime.db import TenantMismatchError, expected_schema, public_call, tenant_call
from realtime.handshake import tenant_for_host
from tests.conftest import CLINICIAN_EMAIL, CLINICIAN_ID, TenantWorld


@pytest.fixture(autouse=True)
def _close_the_shared_threads_connection(
    django_db_blocker: pytest.FixtureRequest,
) -> Iterator[None]:
    """The database thread's connection outlives the test: closed, or the test database could
    not be dropped at the end of the run."""
    yield
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        asyncio.run(sync_to_async(connections.close_all, thread_sensitive=True)())


class SchemaGuard:
    """execute_wrapper: every query's schema must be the calling consumer's."""

    def __init__(self) -> None:
        self.queries = 0
        self.violations: list[str] = []

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        expected = expected_schema.get()
        if expected is not None:
            self.queries += 1
            actual = current_schema_name()
            if actual != expected:
                self.violations.append(f"{actual} != {expected}: {sql[:80]}")
        return execute(sql, params, many, context)


@pytest.fixture
def guard() -> Iterator[SchemaGuard]:
    guard = SchemaGuard()

    def install() -> None:
        connection.execute_wrappers.append(guard)

    def remove() -> None:
        connection.execute_wrappers.remove(guard)

    # On the shared database thread's own connection (connections are per thread).
    asyncio.run(database_sync_to_async(install)())
    yield guard
    asyncio.run(database_sync_to_async(remove)())


def _switch_to(tenant: Any) -> None:
    connection.set_tenant(tenant)  # type: ignore[attr-defined]


def _user_row() -> tuple[str, str]:
    user = User.objects.get(pk=CLINICIAN_ID)
    return (user.full_name, current_schema_name())


def test_every_query_runs_in_the_consumers_tenant_while_the_thread_is_switched_between_calls(
    alpha: TenantWorld, beta: TenantWorld, guard: SchemaGuard
) -> None:
    async def consumer() -> list[tuple[str, str]]:
        tenant = await public_call(tenant_for_host, hostname=alpha.host)
        expected_schema.set(tenant.schema_name)
        seen = []
        for _ in range(3):
            seen.append(await tenant_call(tenant, _user_row))
            # Another consumer's call leaves the shared thread in beta.
            token = expected_schema.set(None)
            await database_sync_to_async(_switch_to)(beta.tenant)
            expected_schema.reset(token)
        return seen

    seen = asyncio.run(consumer())
    assert seen == [("alpha clinician", alpha.tenant.schema_name)] * 3
    assert guard.queries >= 3
    assert guard.violations == []


def test_a_context_around_an_await_reads_the_other_tenant(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    """Why the helper exists: the naive pattern really does read beta's row (same id, same
    email), which is the bug django-tenants #1143 reports."""

    async def naive() -> str:
        await database_sync_to_async(_switch_to)(alpha.tenant)
        # ... another consumer runs on the shared thread meanwhile:
        await database_sync_to_async(_switch_to)(beta.tenant)

        def read() -> str:
            return str(User.objects.get(email=CLINICIAN_EMAIL).full_name)

        return await database_sync_to_async(read)()

    assert asyncio.run(naive()) == "beta clinician"


def test_tenant_call_refuses_another_tenant_than_the_callers(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    async def confused() -> None:
        expected_schema.set(alpha.tenant.schema_name)
        await tenant_call(beta.tenant, _user_row)

    with pytest.raises(TenantMismatchError):
        asyncio.run(confused())
