"""backup_tenant / restore_tenant: real pg_dump and pg_restore against the test database.

Two throwaway tenants are provisioned and committed (pg_dump runs in its own process and only sees
committed rows); the shared alpha and beta tenants are never touched. Committed work runs in a
thread: its own connection, in autocommit, outside the test's rolled-back transaction.
"""

from __future__ import annotations

import io
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import quote_schema_name, schema_exists, tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from apikit.tenancy import activate_public
from tenants.backup import ASIDE_SUFFIX
from tenants.models import Domain, Tenant
from tenants.pg_tools import find_pg_tool
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


def _login_works(slug: str) -> bool:
    response = APIClient(HTTP_HOST=tenant_host(slug)).post(
        "/api/v1/auth/token/",
        {"email": f"admin@{slug}.example", "password": PASSWORD},
        format="json",
    )
    return response.status_code == 200


@pytest.mark.usefixtures("committed_tenants")
def test_backup_drop_restore_round_trip(tmp_path: Path) -> None:
    backup = tmp_path / "a.backup"

    def scenario() -> None:
        schema_a, schema_b = schema_name_for(SLUG_A), schema_name_for(SLUG_B)
        before_a = schema_fingerprint(schema_a)
        before_b = schema_fingerprint(schema_b)
        assert before_a["toy_item"][0] == len(ITEM_IDS)
        assert before_a != before_b  # same keys, different names: the digests must differ

        assert "Backed up tenant 'bkup-a'" in _run("backup_tenant", SLUG_A, "--file", str(backup))
        _run("drop_tenant", SLUG_A, "--confirm")
        assert not schema_exists(schema_a)
        assert not Tenant.objects.filter(slug=SLUG_A).exists()

        output = _run("restore_tenant", SLUG_A, "--file", str(backup))
        assert "Restored tenant 'bkup-a'" in output

        assert schema_fingerprint(schema_a) == before_a
        assert schema_fingerprint(schema_b) == before_b
        restored = Tenant.objects.get(slug=SLUG_A)
        assert restored.ready
        assert restored.schema_name == schema_a
        assert restored.kind == "mixed"
        assert Domain.objects.get(tenant=restored, is_primary=True).domain == tenant_host(SLUG_A)
        with tenant_context(restored):
            assert Item.objects.get(id=ITEM_IDS[3]).name == "bkup-a item 3"
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


@pytest.mark.usefixtures("committed_tenants")
def test_failed_replace_puts_the_live_schema_back(tmp_path: Path) -> None:
    backup = tmp_path / "a.backup"
    broken = tmp_path / "broken.backup"

    def scenario() -> None:
        schema_a = schema_name_for(SLUG_A)
        _run("backup_tenant", SLUG_A, "--file", str(backup))
        before = schema_fingerprint(schema_a)
        # A valid manifest with a corrupt dump: pg_restore fails half way.
        with tarfile.open(backup) as source, tarfile.open(broken, "w") as target:
            manifest = source.getmember("manifest.json")
            target.addfile(manifest, source.extractfile(manifest))
            junk = b"PGDMP" + b"\0" * 64
            info = tarfile.TarInfo("schema.dump")
            info.size = len(junk)
            target.addfile(info, io.BytesIO(junk))

        with pytest.raises(CommandError, match="pg_restore failed"):
            _run("restore_tenant", SLUG_A, "--file", str(broken), "--replace")

        assert schema_fingerprint(schema_a) == before
        assert not schema_exists(schema_a + ASIDE_SUFFIX)
        assert _login_works(SLUG_A)

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
        _run("backup_tenant", "alpha", "--file", str(tmp_path / "alpha.backup"))
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
