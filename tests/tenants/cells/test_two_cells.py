"""Two cells for real: two gunicorns, each with its own database on the local PostgreSQL and its
own cache namespace, sharing one directory database. Tenants with colliding data (the same admin
email and password, the same user id, the same tenant primary key) live in different cells; every
host is served only by its own cell, the other answers 421 naming it, and nothing crosses.

In front of them runs nginx with the documented edge configuration (docs/cells-edge.nginx.conf):
a host missing from its map reaches the default cell, whose 421 sends it on to the owning cell.

Slow (~1-2 min: one migrate, then a database clone for the second cell); it starts what it needs
and drops its databases afterwards. nginx comes from Debian (.ci/ensure-nginx, run by `make test`).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dj_database_url
import psycopg
import pytest
import requests
from psycopg import sql

ROOT = Path(__file__).resolve().parents[3]
PASSWORD = "Shared-Password-1"  # the same in both tenants, on purpose
ADMIN_EMAIL = "admin@example.com"
CLINICIAN_ID = "01900000-0000-7000-8000-0000000ce111"
CLINICIAN_EMAIL = "clinician@example.com"
HOME = {"north": "a", "south": "b"}  # tenant slug -> cell
SEED_CLINICIAN = (
    "from django_tenants.utils import tenant_context; from tenants.models import Tenant; "
    "from accounts.models import User; from accounts.roles import Role; "
    "t = Tenant.objects.get(slug='{slug}'); "
    "ctx = tenant_context(t); ctx.__enter__(); "
    "u = User(id='{id}', email='{email}', role=Role.CLINICIAN, is_active=True, "
    "full_name='{slug} clinician'); u.set_password('{password}'); u.save(); "
    "print(t.pk)"
)


@dataclass(frozen=True)
class Cell:
    name: str
    url: str
    env: dict[str, str]

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        return result

    def get(self, host: str, path: str, token: str | None = None) -> requests.Response:
        headers = {"Host": host}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return requests.get(f"{self.url}{path}", headers=headers, timeout=10)

    def login(self, host: str) -> requests.Response:
        return _login(self.url, host)


def _login(url: str, host: str) -> requests.Response:
    """The shared admin credentials posted for ``host`` to a cell or the edge at ``url``."""
    return requests.post(
        f"{url}/api/v1/auth/token/",
        json={"email": ADMIN_EMAIL, "password": PASSWORD},
        headers={"Host": host},
        timeout=10,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_url(database: str) -> str:
    config = dj_database_url.parse(os.environ["DATABASE_URL"])
    auth = config["USER"] + (f":{config['PASSWORD']}" if config.get("PASSWORD") else "")
    host = config.get("HOST") or "127.0.0.1"
    return f"postgres://{auth}@{host}:{config.get('PORT') or 5432}/{database}"


def _admin(statement: sql.Composed) -> None:
    with psycopg.connect(_server_url("postgres"), autocommit=True) as conn:
        conn.execute(statement)


def _query(database: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(_server_url(database)) as conn:
        return conn.execute(query.encode()).fetchall()


def _wait_until_up(cell: Cell, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            requests.get(f"{cell.url}/healthz", timeout=2)
            return
        except (requests.ConnectionError, requests.Timeout):
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Cell]]:
    run = f"test_cells_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    databases = {"dir": f"{run}_dir", "a": f"{run}_a", "b": f"{run}_b"}
    ports = {"a": _free_port(), "b": _free_port()}
    logs = tmp_path_factory.mktemp("cells")
    base_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "settings.test",
        "CELLS_DIRECTORY_DATABASE_URL": _server_url(databases["dir"]),
        "CELLS_DIRECTORY_CACHE_SECONDS": "0",
    }
    base_env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    cells = {
        name: Cell(
            name=name,
            url=f"http://127.0.0.1:{ports[name]}",
            env={
                **base_env,
                "CELL_NAME": name,
                "CELL_URL": f"http://127.0.0.1:{ports[name]}",
                "DATABASE_URL": _server_url(databases[name]),
                # Each cell's own routing generation, throttles and cache (its own Redis, in effect).
                "CACHE_KEY_PREFIX": f"{run}-{name}",
            },
        )
        for name in ("a", "b")
    }
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for database in (databases["dir"], databases["a"]):
            _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        cells["a"].manage("migrate_schemas", "--shared", "--noinput", "-v", "0")
        cells["a"].manage("ensure_template_schema")
        # Cell b starts as a copy of a freshly migrated cell: the same code version, no tenants.
        _admin(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(databases["b"]), sql.Identifier(databases["a"])
            )
        )
        cells["a"].manage("cells_directory_migrate", "-v", "0")
        for cell in cells.values():
            cell.manage("cell_register")
        for slug, home in HOME.items():
            cells[home].manage(
                "cell_provision_tenant",
                slug,
                "--name",
                f"{slug} org",
                "--kind",
                "mixed",
                "--admin-email",
                ADMIN_EMAIL,
                "--admin-password",
                PASSWORD,
            )
            seeded = cells[home].manage(
                "shell",
                "-c",
                SEED_CLINICIAN.format(
                    slug=slug, id=CLINICIAN_ID, email=CLINICIAN_EMAIL, password=PASSWORD
                ),
            )
            # The same tenant primary key in both cells: nothing may key on it across cells.
            assert seeded.stdout.strip().splitlines()[-1] == "2"
        for cell in cells.values():
            log = logs / f"{cell.name}.log"
            with log.open("w") as out:
                server = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "gunicorn"),
                        "settings.wsgi:application",
                        "--bind",
                        cell.url.removeprefix("http://"),
                        "--workers",
                        "1",
                        "--threads",
                        "2",
                    ],
                    cwd=ROOT,
                    env=cell.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            servers.append(server)
            _wait_until_up(cell, server, log)
        yield cells
    finally:
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            server.wait(timeout=30)
        for database in databases.values():
            _admin(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
            )


def _host(slug: str) -> str:
    return f"{slug}.verdant.test"


def test_each_host_is_served_by_its_own_cell_and_redirected_by_the_other(
    cells: dict[str, Cell],
) -> None:
    for slug, home in HOME.items():
        for cell in cells.values():
            response = cell.get(_host(slug), "/api/v1/auth/me/")
            if cell.name == home:
                assert response.status_code == 401, response.text  # served: wants a token
            else:
                assert response.status_code == 421, response.text
                error = response.json()["error"]
                assert (error["code"], error["cell"], error["cell_url"]) == (
                    "tenant_in_other_cell",
                    home,
                    cells[home].url,
                )
                assert response.headers["Verdant-Cell-URL"] == cells[home].url
        for cell in cells.values():
            assert cell.get("nobody.verdant.test", "/api/v1/auth/me/").status_code == 404


def test_colliding_credentials_and_ids_never_cross_cells(cells: dict[str, Cell]) -> None:
    """The same email, password and user id exist in north (cell a) and south (cell b)."""
    # The wrong cell refuses to authenticate north's host against its own data, although the
    # credentials are valid there for south.
    misdirected = cells["b"].login(_host("north"))
    assert misdirected.status_code == 421
    assert "access" not in misdirected.text

    tokens = {}
    for slug, home in HOME.items():
        # What a front proxy does with the 421: the same request at the cell it names.
        first = cells["b" if home == "a" else "a"].login(_host(slug))
        retried = _login(first.json()["error"]["cell_url"], _host(slug))
        assert retried.status_code == 200, retried.text
        tokens[slug] = retried.json()["access"]

    for slug, home in HOME.items():
        clinician = cells[home].get(_host(slug), f"/api/v1/users/{CLINICIAN_ID}/", tokens[slug])
        assert clinician.status_code == 200, clinician.text
        assert clinician.json()["full_name"] == f"{slug} clinician"

    # North's token: rejected on south's host in south's cell, and never served by cell b.
    assert cells["b"].get(_host("south"), "/api/v1/auth/me/", tokens["north"]).status_code == 401
    wrong_cell = cells["b"].get(_host("north"), f"/api/v1/users/{CLINICIAN_ID}/", tokens["north"])
    assert wrong_cell.status_code == 421
    assert "clinician" not in wrong_cell.text


def test_a_slug_taken_in_one_cell_cannot_be_provisioned_in_another(cells: dict[str, Cell]) -> None:
    refused = cells["b"].manage(
        "cell_provision_tenant",
        "north",
        "--name",
        "Impostor",
        "--kind",
        "farm",
        "--admin-email",
        ADMIN_EMAIL,
        "--admin-password",
        PASSWORD,
        check=False,
    )
    assert refused.returncode != 0
    assert "tenant 'north' already lives in cell 'a'" in refused.stderr
    database_b = cells["b"].env["DATABASE_URL"].rsplit("/", 1)[1]
    assert _query(database_b, "SELECT count(*) FROM tenants_tenant WHERE slug = 'north'") == [(0,)]
    assert _query(database_b, "SELECT count(*) FROM pg_namespace WHERE nspname = 't_north'") == [
        (0,)
    ]
    directory = cells["b"].env["CELLS_DIRECTORY_DATABASE_URL"].rsplit("/", 1)[1]
    assert _query(
        directory,
        "SELECT p.slug, p.cell_id, p.state, h.host FROM cells_placement p "
        "JOIN cells_placementhost h ON h.placement_id = p.id ORDER BY p.slug",
    ) == [
        ("north", "a", "active", "north.verdant.test"),
        ("south", "b", "active", "south.verdant.test"),
    ]
    # No stray copy of the directory in a cell's own database.
    assert _query(database_b, "SELECT to_regclass('public.cells_placement') IS NULL") == [(True,)]


# --- the documented edge proxy, for real -----------------------------------------------------

EDGE_CONF = ROOT / "docs" / "cells-edge.nginx.conf"
NGINX_MAIN = """daemon off;
master_process off;
pid {tmp}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    include {tmp}/edge.conf;
}}
"""


def _nginx() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    assert found, "nginx is missing: run .ci/ensure-nginx (apt-get install nginx-light)"
    return found


@pytest.fixture(scope="module")
def edge(cells: dict[str, Cell], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("edge")
    port = _free_port()
    directory_map = cells["a"].manage("cells_nginx_map").stdout
    assert directory_map.splitlines() == [
        f"north.verdant.test {cells['a'].url};",
        f"south.verdant.test {cells['b'].url};",
    ]
    # A stale map, written before south existed: south reaches the default cell first.
    (tmp / "cells.map").write_text(directory_map.splitlines()[0] + "\n")
    conf = EDGE_CONF.read_text()
    for documented, local in (
        ("listen 80;", f"listen 127.0.0.1:{port};"),
        ("/etc/nginx/verdant-cells.map", str(tmp / "cells.map")),
        ("http://cell-a.internal.example:8000", cells["a"].url),
        (".verdant.example", ".verdant.test"),
    ):
        assert documented in conf
        conf = conf.replace(documented, local)
    (tmp / "edge.conf").write_text(conf)
    (tmp / "nginx.conf").write_text(NGINX_MAIN.format(tmp=tmp))
    log = tmp / "error.log"
    server = subprocess.Popen(
        [_nginx(), "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-e", str(log)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, log.read_text() if log.exists() else "nginx exited"
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_the_edge_proxy_sends_every_host_to_its_cell(edge: str) -> None:
    """north is in the map (straight to cell a); south is not (cell a answers 421, nginx retries at
    cell b, the client sees only b's answer); an unknown host gets the default cell's 404."""
    for slug in HOME:
        response = requests.get(
            f"{edge}/api/v1/auth/me/", headers={"Host": _host(slug)}, timeout=10
        )
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "not_authenticated"
    unknown = requests.get(
        f"{edge}/api/v1/auth/me/", headers={"Host": "nobody.verdant.test"}, timeout=10
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "tenant_not_found"

    for slug in HOME:
        # A POST body survives the retry: the same credentials log in to each tenant's own data.
        token = _login(edge, _host(slug))
        assert token.status_code == 200, token.text
        clinician = requests.get(
            f"{edge}/api/v1/users/{CLINICIAN_ID}/",
            headers={"Host": _host(slug), "Authorization": f"Bearer {token.json()['access']}"},
            timeout=10,
        )
        assert clinician.status_code == 200, clinician.text
        assert clinician.json()["full_name"] == f"{slug} clinician"


# --- moving a tenant between cells (runs last: north ends in cell b) ---------------------------


def _eventually(check: Callable[[], bool], *, seconds: float = 10) -> None:
    """Routing caches follow a change within TENANT_ROUTING_RECHECK_SECONDS (1 s in tests)."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "the cells did not follow the change in time"
        time.sleep(0.2)


def test_a_tenant_moves_between_cells_by_backup_restore_and_the_directory_flip(
    cells: dict[str, Cell], edge: str, tmp_path: Path
) -> None:
    """The runbook of docs/scaling.md: archive on the source, back up, restore on the target,
    activate there, drop on the source. North's users, ids and data arrive in cell b next to
    south's colliding ones; both cells and the (now stale) edge map send north to b."""
    source, target = cells["a"], cells["b"]
    backup = tmp_path / "north.backup"
    # Issued by cell a before the move; the cells share their signing key (docs/scaling.md).
    token_before = source.login(_host("north")).json()["access"]
    source.manage("archive_tenant", "north")
    source.manage("backup_tenant", "north", "--file", str(backup))
    target.manage("restore_tenant", "north", "--file", str(backup))
    moved = target.manage("cell_activate_tenant", "north", "--resume")
    assert "now routes to cell 'b'" in moved.stdout

    def misdirected_to_target() -> bool:
        response = source.get(_host("north"), "/api/v1/auth/me/")
        return response.status_code == 421 and response.json()["error"]["cell"] == "b"

    _eventually(misdirected_to_target)
    _eventually(lambda: target.login(_host("north")).status_code == 200)

    # North's users stay signed in: cell a's token is accepted by cell b for north, and only there.
    me = target.get(_host("north"), "/api/v1/auth/me/", token_before)
    assert me.status_code == 200, me.text
    assert target.get(_host("south"), "/api/v1/auth/me/", token_before).status_code == 401

    for slug in HOME:  # both tenants now in cell b, each with its own data
        token = target.login(_host(slug)).json()["access"]
        clinician = target.get(_host(slug), f"/api/v1/users/{CLINICIAN_ID}/", token)
        assert clinician.json()["full_name"] == f"{slug} clinician"

    # The edge's map still says cell a: a answers 421 (north is suspended there), b serves it.
    via_edge = _login(edge, _host("north"))
    assert via_edge.status_code == 200, via_edge.text

    source.manage("drop_tenant", "north", "--confirm")
    _eventually(misdirected_to_target)  # gone from a: the directory still names b
    assert target.manage("cells_nginx_map").stdout.splitlines() == [
        f"north.verdant.test {target.url};",
        f"south.verdant.test {target.url};",
    ]
