"""backup_tenant / restore_tenant against the test database: the copy method (COPY of the rows plus
the template's DDL, no pg_dump or pg_restore at all) and the pg_dump method (real pg_dump and
pg_restore) it falls back to for a schema that differs from the template.

Two throwaway tenants are provisioned and committed (pg_dump runs in its own process and only sees
committed rows); the shared alpha and beta tenants are never touched. Committed work runs in a
thread: its own connection, in autocommit, outside the test's rolled-back transaction.
"""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import quote_schema_name, schema_exists, tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from apikit.tenancy import activate_public
from notify.public.models import SenderRoute
from notify.services import sms_sender_save
from tenants import backup as backup_module
from tenants.backup import ASIDE_SUFFIX
from tenants.models import Domain, Tenant
from tenants.pg_tools import find_pg_tool, libpq_env, libpq_params, pg_connection
from tenants.schema_copy import schema_rows_dump
from tenants.services import schema_name_for, tenant_drop, tenant_host, tenant_provision
from tests.apikit.toy.models import Item, Site
from tests.committed import committed

SLUG_A = "bkup-a"
SLUG_B = "bkup-b"
PASSWORD = "bkup-Password-1"
# The same ids in both tenants: restoring A must not touch B's rows with the same keys.
SITE_ID = uuid.UUID("01900000-0000-7000-8000-00000000c001")
ITEM_IDS = [uuid.UUID(f"01900000-0000-7000-8000-0000000d{n:04d}") for n in range(1, 26)]
USER_ID = uuid.UUID("01900000-0000-7000-8000-00000000e001")
# Each tenant's own SMS number: its webhook route lives in the public schema, outside the backup.
SMS_NUMBER = {SLUG_A: "+14155550131", SLUG_B: "+14155550132"}


pytestmark = pytest.mark.django_db


def _seed(slug: str) -> None:
    tenant = tenant_provision(
        slug=slug,
        name=f"{slug} org",
        kind="mixed",
        admin_email=f"admin@{slug}.example",
        admin_password=PASSWORD,
    ).tenant
    with tenant_context(tenant):
        site = Site.objects.create(id=SITE_ID, name=f"{slug} site")
        for number, item_id in enumerate(ITEM_IDS):
            Item.objects.create(
                id=item_id, site=site, name=f"{slug} item {number}", quantity=number, colour="grün"
            )
        user = User(id=USER_ID, email="field@x.example", role=Role.CLINICIAN, is_active=True)
        user.set_password(PASSWORD)
        user.save()
        sms_sender_save(
            tenant_id=tenant.pk,
            from_number=SMS_NUMBER[slug],
            messaging_service_sid="",
            account_sid="",
            auth_token=None,
            expected_version=None,
            actor=None,
        )


def _cleanup() -> None:
    activate_public()
    for slug in (SLUG_A, SLUG_B):
        if Tenant.objects.filter(slug=slug).exists():
            tenant_drop(slug=slug)
        for schema in (schema_name_for(slug), schema_name_for(slug) + ASIDE_SUFFIX):
            if schema_exists(schema):
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP SCHEMA {quote_schema_name(schema)} CASCADE")


@pytest.fixture
def committed_tenants(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[None]:
    def seed() -> None:
        _cleanup()
        _seed(SLUG_A)
        _seed(SLUG_B)

    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        committed(seed)
        try:
            yield
        finally:
            committed(_cleanup)


def schema_fingerprint(schema: str) -> dict[str, tuple[int, str]]:
    """Row count and an order-independent digest of every row, per table, plus sequence
    positions: equal fingerprints mean equal data."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = %s AND table_type = 'BASE TABLE' ORDER BY table_name",
            [schema],
        )
        tables = [row[0] for row in cursor.fetchall()]
        fingerprint: dict[str, tuple[int, str]] = {}
        for table in tables:
            cursor.execute(
                "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                f"FROM {quote_schema_name(schema)}.{quote_schema_name(table)} t"
            )
            count, digest = cursor.fetchone()
            fingerprint[table] = (count, digest)
        cursor.execute(
            "SELECT sequencename, coalesce(last_value, 0) FROM pg_sequences "
            "WHERE schemaname = %s ORDER BY sequencename",
            [schema],
        )
        for name, last_value in cursor.fetchall():
            fingerprint[f"sequence:{name}"] = (int(last_value), "")
    return fingerprint


def _run(command: str, *args: str) -> str:
    out = io.StringIO()
    call_command(command, *args, stdout=out)
    return out.getvalue()


# The traffic's pace: 20 requests a second stays under the standard plan's per-user burst (300 a
# minute) for 15 s. Unpaced, a quick machine crossed it within a round trip and B's requests met
# the throttle's 429, which says nothing about the restore.
REQUEST_INTERVAL_SECONDS = 0.05


class ServingTraffic:
    """Requests to one tenant's API, over and over on a thread of its own (its own database
    connection, like another web worker), while the test does something else."""

    def __init__(self, slug: str) -> None:
        self.slug = slug
        self.statuses: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve)

    def _serve(self) -> None:
        try:
            client = APIClient(HTTP_HOST=tenant_host(self.slug))
            token = client.post(
                "/api/v1/auth/token/",
                {"email": f"admin@{self.slug}.example", "password": PASSWORD},
                format="json",
            ).json()["access"]
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            while True:
                self.statuses.append(client.get("/api/v1/users/").status_code)
                if self._stop.wait(REQUEST_INTERVAL_SECONDS):
                    break
        finally:
            connection.close()

    def __enter__(self) -> ServingTraffic:
        self._thread.start()
        while not self.statuses and self._thread.is_alive():
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _login_works(slug: str) -> bool:
    response = APIClient(HTTP_HOST=tenant_host(slug)).post(
        "/api/v1/auth/token/",
        {"email": f"admin@{slug}.example", "password": PASSWORD},
        format="json",
    )
    return response.status_code == 200


@pytest.mark.usefixtures("committed_tenants")
def test_backup_drop_restore_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The copy method, while another tenant with the same ids serves requests: exact data and
    sequences back, the other tenant untouched and served throughout, and neither pg_dump nor
    pg_restore involved (PG_BIN_DIR points at an empty directory)."""
    backup = tmp_path / "a.backup"
    no_tools = tmp_path / "no-client-tools"
    no_tools.mkdir()

    def scenario() -> None:
        schema_a, schema_b = schema_name_for(SLUG_A), schema_name_for(SLUG_B)
        with ServingTraffic(SLUG_B) as traffic:
            # After B's login (its token and audit event): from here on B only reads.
            before_a = schema_fingerprint(schema_a)
            before_b = schema_fingerprint(schema_b)
            assert before_a["toy_item"][0] == len(ITEM_IDS)
            assert before_a != before_b  # same keys, different names: the digests must differ
            monkeypatch.setenv("PG_BIN_DIR", str(no_tools))
            output = _run("backup_tenant", SLUG_A, "--file", str(backup))
            assert "Backed up tenant 'bkup-a'" in output
            assert ", copy) in " in output
            _run("drop_tenant", SLUG_A, "--confirm")
            assert not schema_exists(schema_a)
            assert not Tenant.objects.filter(slug=SLUG_A).exists()

            assert not SenderRoute.objects.filter(from_number=SMS_NUMBER[SLUG_A]).exists()

            output = _run("restore_tenant", SLUG_A, "--file", str(backup))
            assert "Restored tenant 'bkup-a'" in output
        monkeypatch.delenv("PG_BIN_DIR")
        # B answered every request while A was backed up, dropped and restored.
        assert len(traffic.statuses) > 3
        assert set(traffic.statuses) == {200}

        assert schema_fingerprint(schema_a) == before_a
        assert schema_fingerprint(schema_b) == before_b
        restored = Tenant.objects.get(slug=SLUG_A)
        assert restored.ready
        assert restored.schema_name == schema_a
        assert restored.kind == "mixed"
        assert Domain.objects.get(tenant=restored, is_primary=True).domain == tenant_host(SLUG_A)
        with tenant_context(restored):
            assert Item.objects.get(id=ITEM_IDS[3]).name == "bkup-a item 3"
        # The SMS webhook route is rebuilt from the restored sender; B's is untouched.
        routes = {
            r.tenant.slug: r.from_number for r in SenderRoute.objects.select_related("tenant")
        }
        assert routes[SLUG_A] == SMS_NUMBER[SLUG_A]
        assert routes[SLUG_B] == SMS_NUMBER[SLUG_B]
        _run("check_schema_drift", "--verbosity", "0")
        # Routable again: the admin can log in on the tenant's host.
        assert _login_works(SLUG_A)
        assert _login_works(SLUG_B)

    committed(scenario)


@pytest.mark.usefixtures("committed_tenants")
def test_replace_restores_old_data_over_live_tenant(tmp_path: Path) -> None:
    backup = tmp_path / "a.backup"

    def scenario() -> None:
        schema_a = schema_name_for(SLUG_A)
        _run("backup_tenant", SLUG_A, "--file", str(backup))
        # Patient data: the backup's owner alone may read it.
        assert backup.stat().st_mode & 0o777 == 0o600
        before = schema_fingerprint(schema_a)
        tenant = Tenant.objects.get(slug=SLUG_A)
        with tenant_context(tenant):
            Item.objects.filter(id__in=ITEM_IDS[:5]).delete()
        activate_public()
        assert schema_fingerprint(schema_a) != before

        with pytest.raises(CommandError, match="exists; re-run with --replace"):
            _run("restore_tenant", SLUG_A, "--file", str(backup))
        output = _run("restore_tenant", SLUG_A, "--file", str(backup), "--replace")

        assert "Replaced the data of tenant 'bkup-a'" in output
        assert schema_fingerprint(schema_a) == before
        assert not schema_exists(schema_a + ASIDE_SUFFIX)
        assert Tenant.objects.get(slug=SLUG_A).pk == tenant.pk

    committed(scenario)


def _corrupt(backup: Path, broken: Path, *, method: str) -> None:
    """A copy of ``backup`` with a valid manifest whose restore fails half way: a pg_dump file
    that is junk after its header, or (copy) the last table's rows ending in a malformed one."""
    with tarfile.open(backup) as source, tarfile.open(broken, "w") as target:
        manifest = json.loads(source.extractfile("manifest.json").read())  # type: ignore[union-attr]
        last = f"data/{manifest['rows']['tables'][-1]['file']}" if method == "copy" else ""
        for member in source.getmembers():
            payload = source.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "schema.dump":
                payload = b"PGDMP" + b"\0" * 64
            elif member.name == last:
                payload += b"not\ta\tvalid\trow\n"
            info = tarfile.TarInfo(member.name)
            info.size = len(payload)
            target.addfile(info, io.BytesIO(payload))


@pytest.mark.usefixtures("committed_tenants")
@pytest.mark.parametrize(
    ("method", "error"), [("copy", "restoring the rows failed"), ("pg_dump", "pg_restore failed")]
)
def test_failed_replace_puts_the_live_schema_back(tmp_path: Path, method: str, error: str) -> None:
    backup = tmp_path / "a.backup"
    broken = tmp_path / "broken.backup"

    def scenario() -> None:
        schema_a = schema_name_for(SLUG_A)
        _run("backup_tenant", SLUG_A, "--file", str(backup), "--method", method)
        before = schema_fingerprint(schema_a)
        _corrupt(backup, broken, method=method)

        with pytest.raises(CommandError, match=error):
            _run("restore_tenant", SLUG_A, "--file", str(broken), "--replace")

        assert schema_fingerprint(schema_a) == before
        assert not schema_exists(schema_a + ASIDE_SUFFIX)
        assert _login_works(SLUG_A)

    committed(scenario)


@pytest.mark.usefixtures("committed_tenants")
def test_a_schema_unlike_the_template_is_backed_up_by_pg_dump_exactly(tmp_path: Path) -> None:
    """A column added by hand: the template's DDL would lose it, so --method copy refuses with
    one clear line and auto falls back to pg_dump, whose restore keeps the column and its data."""
    backup = tmp_path / "a.backup"

    def scenario() -> None:
        schema_a = schema_name_for(SLUG_A)
        with connection.cursor() as cursor:
            cursor.execute(
                f"ALTER TABLE {quote_schema_name(schema_a)}.toy_item "
                "ADD COLUMN by_hand text NOT NULL DEFAULT 'kept'"
            )
        before = schema_fingerprint(schema_a)
        with pytest.raises(CommandError, match="its tables or columns differ from the template"):
            _run("backup_tenant", SLUG_A, "--file", str(backup), "--method", "copy")
        assert not backup.exists()

        errors = io.StringIO()
        call_command(
            "backup_tenant", SLUG_A, "--file", str(backup), stdout=io.StringIO(), stderr=errors
        )
        assert "Backed up with pg_dump" in errors.getvalue()
        assert "its tables or columns differ from the template's" in errors.getvalue()
        _run("drop_tenant", SLUG_A, "--confirm")
        _run("restore_tenant", SLUG_A, "--file", str(backup))
        assert schema_fingerprint(schema_a) == before
        assert schema_fingerprint(schema_name_for(SLUG_B))["toy_item"][0] == len(ITEM_IDS)

    committed(scenario)


@pytest.mark.usefixtures("committed_tenants")
def test_a_schema_with_other_migrations_than_the_template_is_not_copied(tmp_path: Path) -> None:
    """A migration the template has not applied (a schema mid-deploy, or migrated by hand): the
    template's DDL may not fit its rows, so --method copy refuses with the reason; the other
    tenant, still like the template, is copied."""
    backup = tmp_path / "a.backup"

    def scenario() -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {quote_schema_name(schema_name_for(SLUG_A))}.django_migrations "
                "(app, name, applied) VALUES ('toy', '9999_by_hand', now())"
            )
        with pytest.raises(CommandError, match="its applied migrations differ from the template"):
            _run("backup_tenant", SLUG_A, "--file", str(backup), "--method", "copy")
        assert not backup.exists()
        output = _run(
            "backup_tenant", SLUG_B, "--file", str(tmp_path / "b.backup"), "--method", "copy"
        )
        assert ", copy) in " in output

    committed(scenario)


@pytest.mark.usefixtures("committed_tenants")
def test_restore_refuses_another_tenants_backup(tmp_path: Path) -> None:
    backup = tmp_path / "b.backup"

    def scenario() -> None:
        _run("backup_tenant", SLUG_B, "--file", str(backup))
        with pytest.raises(CommandError, match="holds tenant 'bkup-b', not 'bkup-a'"):
            _run("restore_tenant", SLUG_A, "--file", str(backup), "--replace")

    committed(scenario)


def test_backup_of_unknown_tenant_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="backup_tenant: no tenant 'nobody'"):
        _run("backup_tenant", "nobody", "--file", str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_restore_rejects_a_file_that_is_not_a_backup(tmp_path: Path) -> None:
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a tar file")
    with pytest.raises(CommandError, match="is not a Verdant tenant backup"):
        _run("restore_tenant", "alpha", "--file", str(junk))


def test_missing_pg_dump_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))
    with pytest.raises(CommandError) as caught:
        _run(
            "backup_tenant",
            "alpha",
            "--file",
            str(tmp_path / "alpha.backup"),
            "--method",
            "pg_dump",
        )
    message = str(caught.value)
    assert message.startswith("backup_tenant: pg_dump not found")
    assert "postgresql-client" in message
    assert "\n" not in message


def test_client_tools_are_found_newest_major_first(tmp_path: Path) -> None:
    for major in ("13", "15"):
        bin_dir = tmp_path / "postgresql" / major / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "pg_dump").write_text("")
    found = find_pg_tool("pg_dump", search_roots=(tmp_path / "postgresql",), path_env="")
    assert found == tmp_path / "postgresql" / "15" / "bin" / "pg_dump"
    assert find_pg_tool("pg_restore", search_roots=(tmp_path / "none",), path_env="") is None


def test_the_client_tools_and_the_backups_own_connection_get_the_same_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pg_dump / pg_restore (libpq variables) and the copy method's psycopg connection (libpq
    keywords) connect alike, TLS files and connect timeout included."""
    options = {
        **(connection.settings_dict.get("OPTIONS") or {}),
        "sslmode": "verify-full",
        "sslrootcert": "/etc/verdant/db-ca.pem",
        "connect_timeout": 7,
    }
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", options)
    params, env = libpq_params(), libpq_env()
    assert params["sslrootcert"] == env["PGSSLROOTCERT"] == "/etc/verdant/db-ca.pem"
    assert params["sslmode"] == env["PGSSLMODE"] == "verify-full"
    assert params["connect_timeout"] == env["PGCONNECT_TIMEOUT"] == "7"
    assert params["dbname"] == env["PGDATABASE"] == connection.settings_dict["NAME"]
    assert "application_name" not in params  # each connection names itself


def test_the_copy_dump_reads_one_read_only_repeatable_read_snapshot(tmp_path: Path) -> None:
    """The refusal check and every table's rows come from one snapshot: the dump's own BEGIN
    sets it (no transaction of the driver's already open, which would turn it into a warning)."""
    seen: dict[str, str] = {}

    def refusal(cursor: Any) -> str:
        for setting in ("transaction_isolation", "transaction_read_only"):
            cursor.execute(f"SHOW {setting}")
            seen[setting] = cursor.fetchone()[0]
        return ""

    with pg_connection(application_name="verdant-test") as conn:
        notices: list[str] = []
        conn.add_notice_handler(lambda notice: notices.append(str(notice.message_primary)))
        rows = schema_rows_dump(
            conn, schema=settings.TENANT_TEMPLATE_SCHEMA, directory=tmp_path, refusal=refusal
        )
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert seen == {"transaction_isolation": "repeatable read", "transaction_read_only": "on"}
    assert notices == []
    assert "django_migrations" in {table.table for table in rows.tables}


def test_without_the_template_script_auto_falls_back_to_pg_dump_and_copy_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No stored template script and no pg_dump to make one: --method copy says so in one line;
    auto goes to pg_dump, which (missing here too) says what to install."""
    monkeypatch.setattr(backup_module, "template_script", lambda: None)
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))
    target = tmp_path / "alpha.backup"
    with pytest.raises(CommandError, match="cannot back up 'alpha' by copy: the template's DDL"):
        _run("backup_tenant", "alpha", "--file", str(target), "--method", "copy")
    with pytest.raises(CommandError, match="backup_tenant: pg_dump not found"):
        _run("backup_tenant", "alpha", "--file", str(target))
    assert not target.exists()


def _archive(path: Path, manifest: dict[str, object], members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as archive:
        for name, payload in {"manifest.json": json.dumps(manifest).encode(), **members}.items():
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            archive.addfile(info, io.BytesIO(payload))


COPY_TABLE = {"table": "t", "columns": ["id"], "file": "0000.copy", "bytes": 0}
COPY_MANIFEST = {
    "format": "verdant-tenant-backup",
    "version": 2,
    "slug": "alpha",
    "method": "copy",
    "ddl_schema": "tenant_template",
    "rows": {"tables": [COPY_TABLE], "sequences": {}},
}
ESCAPING_ROWS = {"tables": [{**COPY_TABLE, "file": "../../etc/passwd"}], "sequences": {}}


@pytest.mark.parametrize(
    ("manifest", "members", "reason"),
    [
        ({**COPY_MANIFEST, "version": 3}, {}, "unknown format or version"),
        ({**COPY_MANIFEST, "method": "rsync"}, {}, "manifest malformed"),
        ({**COPY_MANIFEST, "rows": {"tables": "x"}}, {}, "manifest malformed"),
        ({**COPY_MANIFEST, "rows": ESCAPING_ROWS}, {}, "manifest malformed"),
        (COPY_MANIFEST, {"schema.sql": b"--"}, "schema or data files missing"),
        ({**COPY_MANIFEST, "method": "pg_dump"}, {"schema.sql": b"--"}, "files missing"),
    ],
    ids=["version", "method", "rows", "path-escape", "data-missing", "dump-missing"],
)
def test_restore_rejects_a_malformed_backup_in_one_line(
    tmp_path: Path, manifest: dict[str, object], members: dict[str, bytes], reason: str
) -> None:
    path = tmp_path / "bad.backup"
    _archive(path, manifest, members)
    with pytest.raises(CommandError, match=f"is not a Verdant tenant backup .*{reason}"):
        _run("restore_tenant", "alpha", "--file", str(path), "--replace")


def test_a_template_migrated_during_the_backup_sends_it_to_pg_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The copy method's DDL must be the template's as of the rows' snapshot. A deploy that
    migrates the template while the script is fetched, or before the rows are read, is caught
    (here simulated by what the template's migration table answers) and --method copy refuses."""
    target = tmp_path / "alpha.backup"
    before, after = frozenset({("app", "0001", "t1")}), frozenset({("app", "0002", "t2")})
    answers = iter([before, after])
    monkeypatch.setattr(backup_module, "_template_records", lambda conn: next(answers))
    with pytest.raises(CommandError, match="the template was migrated during the backup"):
        _run("backup_tenant", "alpha", "--file", str(target), "--method", "copy")

    # Stable while the script is fetched, but not what the dump's snapshot reads.
    monkeypatch.setattr(backup_module, "_template_records", lambda conn: before)
    with pytest.raises(CommandError, match="the template was migrated during the backup"):
        _run("backup_tenant", "alpha", "--file", str(target), "--method", "copy")
    assert not target.exists()
