"""Real-client sync tests: WatermelonDB (tests/sync/wmdb_client) against a real gunicorn.

One committed pair of tenants for the package (tests/security/world.py: ``wc-a`` and ``wc-b``,
the same ids and emails in both, each text carrying its tenant's marker) and one gunicorn serving
them. Devices log in over HTTP with a registered device (tokens carry ``did``), like the app.
Tests write committed data through the server, so each compares against what the server says
at that moment (``assert_device_matches_server``), never against the seed.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django_tenants.utils import schema_context

from tests.security.live import LiveServer, live_gunicorn
from tests.security.world import Side, World, email_for, world_create, world_drop
from tests.sync.wmdb import ServerClient, node_executable, stop_idle_devices

PREFIX = "wc"
SETTLE_TIMEOUT_SECONDS = 60.0


@dataclass
class ClientWorld:
    world: World
    server: LiveServer
    _tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def a(self) -> Side:
        return self.world.a

    @property
    def b(self) -> Side:
        return self.world.b

    def login(
        self,
        side: Side,
        role: str,
        *,
        device_name: str | None = "wmdb test device",
        email: str | None = None,
    ) -> str:
        """An access token of ``role`` on ``side`` (the world's user of that role, or the user
        ``email`` made by ``user_create``), bound to a registered device (``did``) unless
        ``device_name`` is None. Cached for the package."""
        key = (side.key, f"{email or role}/{device_name}")
        if key in self._tokens:
            return self._tokens[key]
        credentials = side.credentials(role)
        if email is not None:
            credentials = {**credentials, "email": email}
        token = self._token(side, credentials)
        if device_name is not None:
            device = ServerClient(self.server.url, side.host, token).post(
                "/api/v1/sync/devices/", {"name": device_name, "platform": "android"}
            )
            assert device.status_code == 201, device.text
            token = self._token(side, {**credentials, "device": device.json()["id"]})
        self._tokens[key] = token
        return token

    def _token(self, side: Side, body: dict[str, Any]) -> str:
        response = requests.post(
            f"{self.server.url}/api/v1/auth/token/",
            json=body,
            headers={"Host": side.host},
            timeout=60,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access"])

    def client(self, side: Side, role: str, **kwargs: Any) -> ServerClient:
        return ServerClient(self.server.url, side.host, self.login(side, role, **kwargs))

    def email(self, role: str) -> str:
        return email_for(role)

    def user_create(self, side: Side, role: str, email: str) -> str:
        """A new active user of ``role`` on ``side`` with the side's password, made through the
        API by the tenant admin (once per email for the package); answers its id. Scenarios
        that grant, revoke or change roles use their own users, so the world's users keep the
        scope the other tests expect."""
        key = (side.key, f"user/{email}")
        if key not in self._tokens:
            admin = self.client(side, "tenant_admin")
            body = admin.ok(
                admin.post(
                    "/api/v1/users/",
                    {"email": email, "role": role, "password": side.password, "is_active": True},
                ),
                201,
            )
            self._tokens[key] = str(body["id"])
        return self._tokens[key]

    def schema(self, side: Side) -> contextlib.AbstractContextManager[None]:
        """The ORM on ``side``'s schema, committing each statement (for what a test has to
        change behind the server's back: ages, the change log)."""
        return schema_context(side.schema)

    def settle(self) -> None:
        """Wait until every transaction that started before now has ended, so the pull's
        watermark covers what the server committed (other runs share the cluster and hold it
        back by design: docs/sync.md)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT_SECONDS
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_current_xact_id()::text::bigint")
            target = int(cursor.fetchone()[0])
            while True:
                cursor.execute("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                if int(cursor.fetchone()[0]) > target:
                    return
                assert time.monotonic() < deadline, "another transaction held the watermark back"
                time.sleep(0.05)

    @contextlib.contextmanager
    def watermark_held(self) -> Iterator[None]:
        """A transaction with an id, open for the block (on a connection of its own): the
        pull's watermark cannot pass it, so what the server commits meanwhile is not pulled yet,
        as on a busy server where another writer's transaction is still running."""
        held = connections.create_connection(DEFAULT_DB_ALIAS)
        try:
            held.set_autocommit(False)
            with held.cursor() as cursor:
                cursor.execute("SELECT pg_current_xact_id()")
            yield
        finally:
            held.rollback()
            held.close()


@pytest.fixture(scope="package")
def client_world(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[ClientWorld]:
    node_executable()  # fails with the install hint when node or WatermelonDB is missing
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        assert not connection.in_atomic_block
        world = world_create(PREFIX)
        try:
            with live_gunicorn(workers=2, name="wmdb") as server:
                yield ClientWorld(world=world, server=server)
        finally:
            stop_idle_devices()
            connection.close()
            world_drop(PREFIX)


@pytest.fixture
def cw(
    client_world: ClientWorld, django_db_blocker: pytest.FixtureRequest
) -> Iterator[ClientWorld]:
    """The world, with database access for ``settle()`` (autocommit: nothing is rolled back)."""
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        yield client_world
