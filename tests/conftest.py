"""Shared fixtures: two tenants, ``alpha`` and ``beta``, provisioned once per test run with
deliberately colliding data (same user ids, same emails), so every isolation test can prove one
tenant cannot see or touch the other's rows."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test.utils import setup_databases, teardown_databases
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from apikit.tenancy import activate_public
from tenants.models import Tenant
from tenants.routing import get_router
from tenants.services import tenant_host, tenant_provision

ADMIN_EMAIL = "admin@example.com"
CLINICIAN_EMAIL = "clinician@example.com"
# The same primary key in both tenants: a lookup in the wrong schema would find a row.
CLINICIAN_ID = uuid.UUID("01900000-0000-7000-8000-000000000001")
PASSWORDS = {"alpha": "alpha-Password-1", "beta": "beta-Password-2"}
SLUGS = ("alpha", "beta")


@dataclass(frozen=True)
class TenantWorld:
    tenant: Tenant
    host: str
    password: str

    def client(self) -> APIClient:
        return APIClient(HTTP_HOST=self.host)


def _seed(slug: str) -> None:
    tenant = Tenant.objects.filter(slug=slug).first()
    if tenant is None:
        tenant = tenant_provision(
            slug=slug,
            name=f"{slug.title()} Org",
            kind=Tenant.Kind.MIXED,
            admin_email=ADMIN_EMAIL,
            admin_password=PASSWORDS[slug],
        ).tenant
    with tenant_context(tenant):
        if not User.objects.filter(pk=CLINICIAN_ID).exists():
            clinician = User(
                id=CLINICIAN_ID,
                email=CLINICIAN_EMAIL,
                role=Role.CLINICIAN,
                is_active=True,
                full_name=f"{slug} clinician",
            )
            clinician.set_password(PASSWORDS[slug])
            clinician.save()


@pytest.fixture(scope="session")
def django_db_setup(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[None]:
    created = None
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        if connection.settings_dict["NAME"] != connection.settings_dict["TEST"]["NAME"]:
            # pytest-django creates only the databases its collected tests request through
            # ``db`` / ``transactional_db``; tests on committed data (tests/sync ``live``) use
            # neither, so collected alone they would reach the development database.
            created = setup_databases(verbosity=0, interactive=False)
        for slug in SLUGS:
            _seed(slug)
        activate_public()
    yield
    if created is not None:
        with django_db_blocker.unblock():  # type: ignore[attr-defined]
            teardown_databases(created, verbosity=0)


@pytest.fixture(autouse=True)
def _fresh_tenant_state() -> Iterator[None]:
    """Each test starts on public with an empty routing cache and empty throttle buckets: state a
    test changed (inside its rolled-back transaction, or in Redis) must not reach the next one."""
    activate_public()
    get_router().forget_local()
    _clear_throttle_buckets()
    yield
    activate_public()
    get_router().forget_local()


def _clear_throttle_buckets() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        pattern = f"{settings.CACHES['default']['KEY_PREFIX']}:throttle:*"
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def _world(slug: str) -> TenantWorld:
    tenant = Tenant.objects.get(slug=slug)
    return TenantWorld(tenant=tenant, host=tenant_host(slug), password=PASSWORDS[slug])


@pytest.fixture
def alpha(db: None) -> TenantWorld:
    return _world("alpha")


@pytest.fixture
def beta(db: None) -> TenantWorld:
    return _world("beta")


def login(
    world: TenantWorld, *, email: str = ADMIN_EMAIL, password: str | None = None
) -> APIClient:
    """An API client on the tenant's host, authenticated with a fresh access token."""
    client = world.client()
    response = client.post(
        "/api/v1/auth/token/",
        {"email": email, "password": password or world.password},
        format="json",
    )
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['access']}")
    return client


@pytest.fixture(scope="session", autouse=True)
def _remove_uploaded_files() -> Iterator[None]:
    yield
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)
