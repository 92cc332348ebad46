"""Bounded backend memory (issue 20, item 2): a database connection that has served more than
``DB_MAX_SCHEMAS_PER_CONNECTION`` distinct schemas is closed at the end of the request that
crossed the bound (the next request gets a new PostgreSQL backend), never before and never for
the same schema again and again; per-tenant loops in one task close every N schemas
(``tenants.fanout.schema_walk``); every connection names its process in ``application_name``.

Requests go through Django's real WSGI handler (``WSGIHandler``), not the test client: the test
client disconnects ``close_old_connections`` from the request signals, and the bound lives
exactly there. They run on a committed connection in another thread (tests/committed.py), as
under gunicorn, because a connection inside the test's transaction is never closed.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, transaction
from django.db.backends.signals import connection_created
from django.test import override_settings
from django_tenants.utils import tenant_context

from clinical.reminders.selectors import schemas_with_due_reminders
from settings.process import application_name, process_kind
from tenants.fanout import schema_walk
from tests.committed import committed
from tests.conftest import ADMIN_EMAIL, CLINICIAN_ID, TenantWorld

ROOT = Path(__file__).resolve().parents[2]


def _wsgi(
    handler: WSGIHandler,
    *,
    host: str,
    path: str,
    token: str | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """One request through the WSGI handler: request_started, the middleware, the view, and
    request_finished when the response is closed — where Django checks its connections."""
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    raw = json.dumps(body).encode() if body is not None else b""
    environ.update(
        REQUEST_METHOD="POST" if body is not None else "GET",
        PATH_INFO=path,
        HTTP_HOST=host,
        SERVER_NAME=host,
        CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(raw)),
        HTTP_ACCEPT="application/json",
    )
    environ["wsgi.input"] = io.BytesIO(raw)
    if token:
        environ["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    statuses: list[str] = []

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> None:
        statuses.append(status)

    result = handler(environ, start_response)  # type: ignore[arg-type]
    try:
        content = b"".join(result)
    finally:
        result.close()
    return int(statuses[0].split()[0]), json.loads(content) if content else None


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


class Session:
    """A logged-in admin per tenant on one WSGI handler (one thread: one connection)."""

    def __init__(self, worlds: list[TenantWorld]) -> None:
        self.handler = WSGIHandler()
        self.tokens: dict[str, str] = {}
        self.hosts = {world.tenant.slug: world.host for world in worlds}
        for world in worlds:
            status, payload = _wsgi(
                self.handler,
                host=world.host,
                path="/api/v1/auth/token/",
                body={"email": ADMIN_EMAIL, "password": world.password},
            )
            assert status == 200, payload
            self.tokens[world.tenant.slug] = payload["access"]

    def clinician_name(self, slug: str) -> str:
        """The tenant's own clinician (the same id in both tenants, different names)."""
        status, payload = _wsgi(
            self.handler,
            host=self.hosts[slug],
            path=f"/api/v1/users/{CLINICIAN_ID}/",
            token=self.tokens[slug],
        )
        assert status == 200, payload
        return str(payload["full_name"])

    def public(self) -> int:
        status, _ = _wsgi(self.handler, host=settings.BASE_DOMAIN, path="/api/v1/nothing-here/")
        return status


@pytest.fixture
def persistent_connections() -> Iterator[None]:
    """Connections that outlive a request (the bound, not CONN_MAX_AGE, must close them)."""
    saved = connection.settings_dict["CONN_MAX_AGE"]
    connection.settings_dict["CONN_MAX_AGE"] = 600
    yield
    connection.settings_dict["CONN_MAX_AGE"] = saved


def _walk(
    worlds: list[TenantWorld], steps: Callable[[Session], list[tuple[int, str]]]
) -> list[tuple[int, str]]:
    return committed(lambda: steps(Session(worlds)))


@override_settings(DB_MAX_SCHEMAS_PER_CONNECTION=2)
@pytest.mark.usefixtures("persistent_connections")
def test_a_connection_is_closed_after_more_than_the_bound_of_distinct_schemas(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    def steps(session: Session) -> list[tuple[int, str]]:
        seen = []
        # Login served alpha and beta: two distinct schemas, at the bound, not past it.
        seen.append((_backend_pid(), session.clinician_name("alpha")))
        seen.append((_backend_pid(), session.clinician_name("beta")))
        # A third schema (public) crosses it: closed at the end of that request.
        assert session.public() == 404
        seen.append((_backend_pid(), session.clinician_name("alpha")))
        seen.append((_backend_pid(), session.clinician_name("beta")))
        return seen

    (pid1, a1), (pid2, b1), (pid3, a2), (pid4, b2) = _walk([alpha, beta], steps)
    assert pid1 == pid2, "closed before the bound was crossed"
    assert pid3 != pid2, "not closed after the bound was crossed"
    assert pid4 == pid3, "the new connection starts counting from zero"
    # Colliding tenants (same clinician id): each request still reads its own tenant's row.
    assert (a1, b1, a2, b2) == (
        "alpha clinician",
        "beta clinician",
        "alpha clinician",
        "beta clinician",
    )


@override_settings(DB_MAX_SCHEMAS_PER_CONNECTION=1)
@pytest.mark.usefixtures("persistent_connections")
def test_the_same_schema_again_and_again_never_closes_the_connection(
    alpha: TenantWorld,
) -> None:
    def steps(session: Session) -> list[tuple[int, str]]:
        return [(_backend_pid(), session.clinician_name("alpha")) for _ in range(6)]

    seen = _walk([alpha], steps)
    assert len({pid for pid, _ in seen}) == 1
    assert {name for _, name in seen} == {"alpha clinician"}


@override_settings(DB_MAX_SCHEMAS_PER_CONNECTION=1)
@pytest.mark.usefixtures("persistent_connections")
def test_after_a_close_the_next_request_reads_its_own_tenant(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    """Bound 1: every switch between the colliding tenants closes the connection; whichever
    tenant comes next on the new backend gets its own rows, never the other's."""

    def steps(session: Session) -> list[tuple[int, str]]:
        seen = []
        for slug in ["alpha", "beta", "beta", "alpha", "beta", "alpha"]:
            name = session.clinician_name(slug)
            seen.append((_backend_pid(), f"{slug}:{name}"))
        return seen

    seen = _walk([alpha, beta], steps)
    assert [label for _, label in seen] == [
        f"{slug}:{slug} clinician" for slug in ["alpha", "beta", "beta", "alpha", "beta", "alpha"]
    ]
    pids = [pid for pid, _ in seen]
    assert pids[1] == pids[2], "beta twice in a row is one schema"
    assert len(set(pids)) == 5, "each switch of tenant crossed the bound of 1"


@override_settings(DB_MAX_SCHEMAS_PER_CONNECTION=0)
@pytest.mark.usefixtures("persistent_connections")
def test_bound_zero_disables_it(alpha: TenantWorld, beta: TenantWorld) -> None:
    def steps(session: Session) -> list[tuple[int, str]]:
        seen = [(_backend_pid(), session.clinician_name(slug)) for slug in ["alpha", "beta"]]
        session.public()
        seen.append((_backend_pid(), session.clinician_name("alpha")))
        return seen

    assert len({pid for pid, _ in _walk([alpha, beta], steps)}) == 1


# --- per-tenant loops in one task ----------------------------------------------------------------


def test_schema_walk_closes_the_connection_every_n_items(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    tenants = [alpha.tenant, beta.tenant, alpha.tenant, beta.tenant, alpha.tenant]

    def walk() -> list[tuple[int, str]]:
        seen = []
        for tenant in schema_walk(items=tenants, every=2):
            with tenant_context(tenant):
                name = str(
                    connection.cursor()
                    .execute("SELECT full_name FROM accounts_user WHERE id = %s", [CLINICIAN_ID])
                    .fetchone()[0]
                )
                seen.append((_backend_pid(), name))
        return seen

    seen = committed(walk)
    pids = [pid for pid, _ in seen]
    assert pids[0] == pids[1] != pids[2] == pids[3] != pids[4]
    assert [name for _, name in seen] == [
        "alpha clinician",
        "beta clinician",
        "alpha clinician",
        "beta clinician",
        "alpha clinician",
    ]


def test_schema_walk_never_closes_inside_a_transaction(alpha: TenantWorld) -> None:
    def walk() -> set[int]:
        with transaction.atomic():
            return {_backend_pid() for _ in schema_walk(items=range(5), every=1)}

    assert len(committed(walk)) == 1


def _connections_opened(work: Callable[[], Any]) -> tuple[Any, int]:
    opened: list[object] = []

    def count(sender: object, connection: object, **kwargs: Any) -> None:
        opened.append(connection)

    connection_created.connect(count)
    try:
        value = committed(work)
    finally:
        connection_created.disconnect(count)
    return value, len(opened)


@override_settings(DB_MAX_SCHEMAS_PER_CONNECTION=2)
def test_the_reminder_sweep_closes_its_connection_every_n_schemas(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    schemas = [alpha.tenant.schema_name, beta.tenant.schema_name] * 3

    def sweep() -> list[str]:
        _backend_pid()  # connected before the sweep starts
        return schemas_with_due_reminders(schemas=schemas)

    due, opened = _connections_opened(sweep)
    assert due == []
    # The first connection plus a new one after schemas 2 and 4 (the close after 6 is not
    # followed by another query).
    assert opened == 3


@override_settings(DB_MAX_SCHEMAS_PER_CONNECTION=0)
def test_the_reminder_sweep_keeps_one_connection_when_the_bound_is_off(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    schemas = [alpha.tenant.schema_name, beta.tenant.schema_name] * 3
    _, opened = _connections_opened(lambda: schemas_with_due_reminders(schemas=schemas))
    assert opened == 1


# --- application_name ------------------------------------------------------------------------------


def test_this_process_connection_is_named_in_pg_stat_activity(db: None) -> None:
    def name() -> str:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()"
            )
            return str(cursor.fetchone()[0])

    assert committed(name) == "verdant-test"


@pytest.mark.parametrize(
    ("process", "expected"), [("beat", "verdant-beat"), ("", "verdant-manage")]
)
def test_a_process_names_itself_in_pg_stat_activity(db: None, process: str, expected: str) -> None:
    """A real process on the settings as deployed: VERDANT_PROCESS (set by the Helm chart per
    Deployment / Job) or, unset, derived from the entry point (manage.py shell -> manage)."""
    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    env = {**os.environ, "DATABASE_URL": url, "VERDANT_PROCESS": process}
    code = (
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('SELECT application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()')\n"
        "    print(c.fetchone()[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["/opt/venv/bin/gunicorn", "-c", "settings/gunicorn.conf.py", "x"], "web"),
        (["/opt/venv/bin/celery", "-A", "settings.celery_app", "worker", "-Q", "q"], "worker"),
        (["/opt/venv/bin/celery", "-A", "settings.celery_app", "beat"], "beat"),
        (["manage.py", "migrate_schemas", "--shared"], "migrate"),
        (["manage.py", "migrate"], "migrate"),
        (["manage.py", "runserver"], "web"),
        (["manage.py", "check_schema_drift"], "manage"),
        (["/usr/bin/daphne", "settings.asgi:application"], "realtime"),
    ],
)
def test_the_process_kind_comes_from_the_entry_point(argv: list[str], expected: str) -> None:
    assert process_kind(argv=argv, environ={}) == expected
    assert process_kind(argv=argv, environ={"VERDANT_PROCESS": "realtime"}) == "realtime"
    assert application_name(argv=argv, environ={}) == f"verdant-{expected}"
