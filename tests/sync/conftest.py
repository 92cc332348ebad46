"""Sync fixtures: the farm world (tests/farms) and the clinic world (tests/clinical) in one tenant,
with the same ids in alpha and beta, and pull helpers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from apikit.tenancy import activate_public
from sync.selectors import forget_cached_devices
from tenants.models import Tenant
from tenants.services import tenant_drop, tenant_host, tenant_provision
from tests.clinical.conftest import Clinic, _clinic
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL, CLINICIAN_ID, TenantWorld, login
from tests.farms.conftest import FarmWorld, _make


@dataclass(frozen=True)
class SyncWorld:
    world: TenantWorld
    farms: FarmWorld
    clinic: Clinic


@pytest.fixture(autouse=True)
def _fresh_devices() -> Iterator[None]:
    forget_cached_devices()
    yield
    forget_cached_devices()


LIVE_SLUG = "sync-live"
LIVE_PASSWORD = "sync-live-Password-1"


@pytest.fixture(scope="module")
def live(django_db_setup: None, django_db_blocker: Any) -> Iterator[SyncWorld]:
    """A tenant whose data is really committed (autocommit, no test transaction), provisioned
    for one test module and dropped after it: the pull's watermark only passes committed
    transactions, so incremental pulls are tested the way production runs them. Tests using it
    run every statement in autocommit mode, like requests do."""
    with django_db_blocker.unblock():
        activate_public()
        if Tenant.objects.filter(slug=LIVE_SLUG).exists():
            tenant_drop(slug=LIVE_SLUG)
        tenant = tenant_provision(
            slug=LIVE_SLUG,
            name="Sync live",
            kind=Tenant.Kind.MIXED,
            admin_email=ADMIN_EMAIL,
            admin_password=LIVE_PASSWORD,
        ).tenant
        with tenant_context(tenant):
            clinician = User(
                id=CLINICIAN_ID, email=CLINICIAN_EMAIL, role=Role.CLINICIAN, is_active=True
            )
            clinician.set_password(LIVE_PASSWORD)
            clinician.save()
        world = TenantWorld(tenant=tenant, host=tenant_host(LIVE_SLUG), password=LIVE_PASSWORD)
        activate_public()
        try:
            yield SyncWorld(world=world, farms=_make(world), clinic=_clinic(world))
        finally:
            activate_public()
            tenant_drop(slug=LIVE_SLUG)


@pytest.fixture
def live_db(django_db_blocker: Any) -> Iterator[None]:
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def sync_alpha(alpha: TenantWorld) -> SyncWorld:
    return SyncWorld(world=alpha, farms=_make(alpha), clinic=_clinic(alpha))


@pytest.fixture
def sync_beta(beta: TenantWorld) -> SyncWorld:
    return SyncWorld(world=beta, farms=_make(beta), clinic=_clinic(beta))


def pull(client: APIClient, status: int = 200, **params: Any) -> dict[str, Any]:
    settle()
    response = client.get("/api/v1/sync/pull/", params)
    content = response.getvalue()  # the first sync of a WatermelonDB device is streamed
    assert response.status_code == status, content
    body: dict[str, Any] = json.loads(content)
    return body


def pull_all(
    client: APIClient, cursor: str | None = None, **params: Any
) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]], str, list[dict[str, Any]]]:
    """Page until has_more is false: (upserted rows by table and id, deleted ids by table,
    final cursor, the pages)."""
    upserted: dict[str, dict[str, Any]] = {}
    deleted: dict[str, set[str]] = {}
    pages = []
    while True:
        extra: dict[str, Any] = {"cursor": cursor} if cursor else {}
        body = pull(client, 200, **extra, **params)
        pages.append(body)
        for table, changes in body["changes"].items():
            for row in changes["upserted"]:
                upserted.setdefault(table, {})[row["id"]] = row
                deleted.get(table, set()).discard(row["id"])
            for row_id in changes["deleted"]:
                upserted.get(table, {}).pop(row_id, None)
                deleted.setdefault(table, set()).add(row_id)
        cursor = body["cursor"]
        if not body["has_more"]:
            return upserted, deleted, cursor, pages


def error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    body: dict[str, Any] = response.json()["error"]
    assert body["status"] == status
    return body


def device_login(world: TenantWorld, *, email: str, password: str, device: str) -> APIClient:
    client = world.client()
    response = client.post(
        "/api/v1/auth/token/",
        {"email": email, "password": password, "device": device},
        format="json",
    )
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    client.refresh_token = response.json()["refresh"]  # type: ignore[attr-defined]
    return client


__all__ = ["SyncWorld", "device_login", "error", "login", "pull", "pull_all"]


SETTLE_TIMEOUT_SECONDS = 60.0


def settle() -> None:
    """Wait until every transaction older than now (other than this test's own) has finished,
    so the pull's watermark has passed everything this test wrote. Other test runs share the
    PostgreSQL cluster, and any running transaction holds the watermark back (by design)."""
    from django.db import connection

    own = connection.in_atomic_block
    deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_xact_id()::text::bigint")
        target = int(cursor.fetchone()[0])
        while True:
            cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            xmin = int(cursor.fetchone()[0])
            if xmin >= target + (0 if own else 1):
                return
            assert time.monotonic() < deadline, "another transaction held the watermark back"
            time.sleep(0.05)
