"""Suspending or dropping a tenant publishes (tenants.services -> apikit.access_events, on
commit, on its own channel ``verdant_realtime_tenant``): every real-time process re-checks the
tenant of that schema's sockets at once, so a suspended tenant's sockets close with 4403 and a
dropped one's with 4404 within 5 s — while the periodic sweep is at its production minute
(tests/realtime/live_settings.py). The colliding tenant's sockets (same user ids, same facility
ids) stay open and keep receiving events. The operators' admin (the change form and the
actions) suspends through the same service."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django_tenants.utils import schema_context, tenant_context
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import CREDENTIALS_VERSION_CLAIM, TENANT_CLAIM
from accounts.models import User
from accounts.roles import Role
from apikit.access_events import (
    AUTH_CHANNEL,
    TENANT_CHANNEL,
    parse_auth_payload,
    parse_tenant_payload,
    tenant_access_changed,
)
from realtime.listener import conninfo
from tenants.models import Tenant
from tenants.services import (
    ProvisioningError,
    tenant_archive,
    tenant_drop,
    tenant_host,
    tenant_provision,
    tenant_set_status,
)
from tests.realtime.board import board_params, book, next_start
from tests.realtime.conftest import (
    RealtimeWorld,
    access_token,
    close_code,
    closed_in_time,
    open_socket,
    ready,
    receive,
    receive_about,
    still_open,
    subscribe,
)

# The bound for an affected socket to end after the change commits.
OPERATOR_EMAIL = "suspension-operator@verdant.example"
OPERATOR_PASSWORD = "suspension-Operator-77"
DROP_SLUG = "rt-gone"


@pytest.fixture
def listening(committed_db: None) -> Iterator[psycopg.Connection]:
    with psycopg.connect(conninfo(), autocommit=True) as listener:
        listener.execute(f"LISTEN {TENANT_CHANNEL}")
        listener.execute(f"LISTEN {AUTH_CHANNEL}")
        yield listener


def _heard(listener: psycopg.Connection, timeout: float = 1.0) -> list[tuple[str, str]]:
    return [(n.channel, n.payload) for n in listener.notifies(timeout=timeout)]


@pytest.fixture
def reactivate(rt: RealtimeWorld, committed_db: None) -> Iterator[None]:
    """The world is the package's: tenant A is active again after the test, whatever happened."""
    yield
    tenant_set_status(slug=rt.world.a.slug, status=Tenant.Status.ACTIVE)


# --- the publication ------------------------------------------------------------------------------


def test_a_suspension_publishes_its_schema_on_commit_only(
    rt: RealtimeWorld, listening: psycopg.Connection, reactivate: None
) -> None:
    a, b = rt.world.a, rt.world.b
    with transaction.atomic():
        tenant_archive(slug=a.slug)
        # Inside the transaction: nothing yet (it might still roll back).
        assert _heard(listening, 0.3) == []
    assert _heard(listening) == [(TENANT_CHANNEL, a.schema)]
    with transaction.atomic():
        tenant_set_status(slug=b.slug, status=Tenant.Status.SUSPENDED)
        transaction.set_rollback(True)
    assert _heard(listening) == []
    tenant_set_status(slug=a.slug, status=Tenant.Status.ACTIVE)
    # A reactivation publishes too (the sockets' re-check finds nothing to close).
    assert _heard(listening) == [(TENANT_CHANNEL, a.schema)]


def test_the_tenant_payload_cannot_be_read_as_a_users_and_back() -> None:
    """The channel says "the whole tenant"; the payload is the schema alone. A user's payload
    ("<schema>:<user id>") is no schema name, and a schema name is no user's payload."""
    schema = "t_rt_a"
    assert parse_tenant_payload(schema) == schema
    assert parse_auth_payload(schema) is None
    user_payload = f"{schema}:01900000-0000-7000-8000-000000000001"
    assert parse_tenant_payload(user_payload) is None
    assert parse_auth_payload(user_payload) == (schema, "01900000-0000-7000-8000-000000000001")
    for bad in ("", "t_rt_a:*", "t_rt_a *", "x" * 64, "t;DROP"):
        assert parse_tenant_payload(bad) is None, bad
    with pytest.raises(ValueError, match="not a schema name"):
        tenant_access_changed(schema="t_rt_a:*")


def test_an_unknown_status_is_refused(rt: RealtimeWorld, committed_db: None) -> None:
    with pytest.raises(ProvisioningError, match="invalid status 'paused'"):
        tenant_set_status(slug=rt.world.a.slug, status="paused")


# --- open sockets ---------------------------------------------------------------------------------


def test_a_suspension_closes_its_sockets_4403_and_leaves_the_colliding_tenant(
    rt: RealtimeWorld, committed_db: None, reactivate: None
) -> None:
    a, b = rt.world.a, rt.world.b
    params = board_params(next_start().date())
    with (
        ready(rt, a.host, access_token(a.schema, Role.RECEPTIONIST)) as board_a,
        ready(rt, a.host, access_token(a.schema, Role.FIELD_AGENT)) as sync_a,
        ready(rt, a.host, access_token(a.schema, Role.VIEWER)) as idle_a,
        ready(rt, b.host, access_token(b.schema, Role.RECEPTIONIST)) as board_b,
        ready(rt, b.host, access_token(b.schema, Role.FIELD_AGENT)) as sync_b,
    ):
        # The same user ids and the same facility id in both tenants.
        assert subscribe(board_a, "s", "appointments", params=params)["type"] == "subscribed"
        assert subscribe(board_b, "s", "appointments", params=params)["type"] == "subscribed"
        assert subscribe(sync_a, "c", "changes")["type"] == "subscribed"
        assert subscribe(sync_b, "c", "changes")["type"] == "subscribed"

        tenant_archive(slug=a.slug)
        for ws in (board_a, sync_a, idle_a):
            closed_in_time(ws)

        still_open(board_b)
        still_open(sync_b)
        booked = book(b.schema, starts_at=next_start())
        event = receive_about(board_b, booked)
        assert (event["type"], event["event"]) == ("event", "appointment.created")

        # A new socket of the suspended tenant is refused at the handshake.
        with open_socket(rt, a.host, token=access_token(a.schema, Role.VIEWER)) as again:
            assert close_code(again) == 4403

    # Reactivated: its sockets are served again.
    tenant_set_status(slug=a.slug, status=Tenant.Status.ACTIVE)
    deadline = time.monotonic() + 10
    while True:
        with open_socket(rt, a.host, token=access_token(a.schema, Role.VIEWER)) as back:
            message = receive(back, timeout=10)
            if message["type"] == "ready":
                break
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


@pytest.fixture
def operator(committed_db: None) -> Iterator[Client]:
    _operator_delete()
    with schema_context("public"):
        User.objects.create_superuser(OPERATOR_EMAIL, OPERATOR_PASSWORD)
    try:
        client = Client(HTTP_HOST=str(settings.BASE_DOMAIN))
        response = client.post(
            "/admin/login/?next=/admin/",
            {"username": OPERATOR_EMAIL, "password": OPERATOR_PASSWORD},
        )
        assert response.status_code == 302
        yield client
    finally:
        _operator_delete()


def _operator_delete() -> None:
    """Raw delete: the ORM's cascade would look for guardian tables, which public lacks; the
    admin's own log of the operator's changes goes first (it references the user)."""
    users = f"SELECT id FROM {User._meta.db_table} WHERE email = %s"
    with schema_context("public"), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM django_admin_log WHERE user_id IN ({users})", [OPERATOR_EMAIL])
        cursor.execute(f"DELETE FROM {User._meta.db_table} WHERE email = %s", [OPERATOR_EMAIL])


def _suspended_through_the_admin(
    rt: RealtimeWorld, suspend: Callable[[Tenant], None], reactivate_it: Callable[[Tenant], None]
) -> None:
    a, b = rt.world.a, rt.world.b
    tenant = Tenant.objects.get(slug=a.slug)
    with (
        ready(rt, a.host, access_token(a.schema, Role.NURSE)) as ws_a,
        ready(rt, b.host, access_token(b.schema, Role.NURSE)) as ws_b,
    ):
        suspend(tenant)
        assert Tenant.objects.get(slug=a.slug).is_suspended
        closed_in_time(ws_a)
        still_open(ws_b)
    reactivate_it(tenant)
    assert not Tenant.objects.get(slug=a.slug).is_suspended


def test_the_admin_change_form_suspends_through_the_service(
    rt: RealtimeWorld, operator: Client, reactivate: None
) -> None:
    def form(status: str) -> Callable[[Tenant], None]:
        def post(tenant: Tenant) -> None:
            response = operator.post(
                f"/admin/tenants/tenant/{tenant.pk}/change/",
                {
                    "name": tenant.name,
                    "kind": tenant.kind,
                    "plan": tenant.plan_id,
                    "status": status,
                },
            )
            assert response.status_code == 302, response.content[:2000]

        return post

    _suspended_through_the_admin(
        rt, form(Tenant.Status.SUSPENDED.value), form(Tenant.Status.ACTIVE.value)
    )


def test_the_admin_action_suspends_through_the_service(
    rt: RealtimeWorld, operator: Client, reactivate: None
) -> None:
    def action(name: str) -> Callable[[Tenant], None]:
        def post(tenant: Tenant) -> None:
            response = operator.post(
                "/admin/tenants/tenant/", {"action": name, "_selected_action": [tenant.pk]}
            )
            assert response.status_code == 302, response.content[:2000]

        return post

    _suspended_through_the_admin(rt, action("suspend"), action("reactivate"))


def test_dropping_a_tenant_closes_its_sockets_4404(rt: RealtimeWorld, committed_db: None) -> None:
    """A dropped tenant's host is gone: its open sockets get the handshake's answer for an
    unknown host, 4404 (do not retry), within 5 s; the colliding tenants are untouched."""
    if Tenant.objects.filter(slug=DROP_SLUG).exists():
        tenant_drop(slug=DROP_SLUG)
    provisioned = tenant_provision(
        slug=DROP_SLUG,
        name="Gone Org",
        kind=Tenant.Kind.CLINIC,
        admin_email="admin@example.com",
        admin_password="gone-Password-31",
    )
    try:
        with tenant_context(provisioned.tenant):
            user = User.objects.get(email="admin@example.com")
            token = AccessToken.for_user(user)
            token[TENANT_CLAIM] = provisioned.tenant.schema_name
            token[CREDENTIALS_VERSION_CLAIM] = user.credentials_version
        b = rt.world.b
        with (
            ready(rt, tenant_host(DROP_SLUG), str(token)) as ws_gone,
            ready(rt, b.host, access_token(b.schema, Role.TENANT_ADMIN)) as ws_b,
        ):
            tenant_drop(slug=DROP_SLUG)
            closed_in_time(ws_gone, code=4404)
            still_open(ws_b)
    finally:
        if Tenant.objects.filter(slug=DROP_SLUG).exists():
            tenant_drop(slug=DROP_SLUG)
