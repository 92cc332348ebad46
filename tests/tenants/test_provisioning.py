"""provision_tenant / archive_tenant / drop_tenant / check_schema_drift."""

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import schema_exists, tenant_context

from accounts.models import User
from tenants import services
from tenants.migration_state import applied_migrations, column_signatures, expected_migrations
from tenants.models import Domain, Tenant
from tests.conftest import TenantWorld

ROOT = Path(__file__).resolve().parents[2]


def _provision(slug: str = "gamma", **overrides: str) -> str:
    out = io.StringIO()
    options = {
        "name": "Gamma Org",
        "kind": "clinic",
        "admin_email": "Boss@Gamma.Example",
        "admin_password": "gamma-Password-9",
        **overrides,
    }
    call_command("provision_tenant", slug, stdout=out, **options)
    return out.getvalue()


def _nothing_left(slug: str) -> None:
    assert not Tenant.objects.filter(slug=slug).exists()
    assert not Domain.objects.filter(domain=f"{slug}.{settings.BASE_DOMAIN}").exists()
    assert not schema_exists(services.schema_name_for(slug))


def test_provision_creates_schema_domain_and_active_admin(db: None) -> None:
    output = _provision()
    tenant = Tenant.objects.get(slug="gamma")
    assert tenant.schema_name == "t_gamma"
    assert tenant.ready
    assert tenant.status == Tenant.Status.ACTIVE
    assert not tenant.is_template
    assert tenant.domains.get().domain == "gamma.verdant.test"
    assert schema_exists("t_gamma")
    with tenant_context(tenant):
        admin = User.objects.get()
        assert admin.email == "boss@gamma.example"
        assert admin.role == "tenant_admin"
        assert admin.is_active
        assert admin.is_staff
        assert admin.check_password("gamma-Password-9")
    # Cloned, not migrated: the clone is at exactly the template's (and the code's) migrations,
    # with the same columns.
    applied = applied_migrations(["t_gamma", settings.TENANT_TEMPLATE_SCHEMA])
    assert applied["t_gamma"] == applied[settings.TENANT_TEMPLATE_SCHEMA] == expected_migrations()
    columns = column_signatures(["t_gamma", settings.TENANT_TEMPLATE_SCHEMA])
    assert columns["t_gamma"] == columns[settings.TENANT_TEMPLATE_SCHEMA]
    assert "schema:   t_gamma" in output
    assert "host:     gamma.verdant.test" in output


def test_provision_generates_and_prints_a_password_when_none_given(db: None) -> None:
    output = _provision(admin_password=None)  # type: ignore[arg-type]
    printed = output.split("password: ")[1].split(" ")[0].strip()
    assert "(generated; shown once)" in output
    with tenant_context(Tenant.objects.get(slug="gamma")):
        assert User.objects.get().check_password(printed)


def test_duplicate_slug_is_refused_and_changes_nothing(alpha: TenantWorld) -> None:
    tenants_before = Tenant.objects.count()
    with pytest.raises(CommandError, match="tenant 'alpha' already exists"):
        _provision("alpha")
    assert Tenant.objects.count() == tenants_before


@pytest.mark.parametrize(
    ("slug", "reason"),
    [
        ("ab", "invalid slug"),
        ("Acme", "invalid slug"),
        ("1acme", "invalid slug"),
        ("acme_north", "invalid slug"),
        ("acme;drop", "invalid slug"),
        ("a" * 41, "invalid slug"),
        ("public", "reserved"),
        ("www", "reserved"),
    ],
)
def test_invalid_slug_is_refused_with_one_line(db: None, slug: str, reason: str) -> None:
    with pytest.raises(CommandError) as excinfo:
        _provision(slug)
    assert reason in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    _nothing_left(slug)


def test_invalid_kind_email_or_plan_is_refused(db: None) -> None:
    with pytest.raises(services.ProvisioningError, match="invalid kind"):
        services.tenant_provision(slug="gamma", name="G", kind="zoo", admin_email="a@b.example")
    with pytest.raises(services.ProvisioningError, match="invalid admin email"):
        services.tenant_provision(slug="gamma", name="G", kind="farm", admin_email="nope")
    with pytest.raises(services.ProvisioningError, match="unknown plan"):
        services.tenant_provision(
            slug="gamma", name="G", kind="farm", admin_email="a@b.example", plan_name="gold"
        )
    _nothing_left("gamma")


def test_failure_after_cloning_leaves_nothing_behind(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_user_create(**kwargs: object) -> None:
        assert schema_exists("t_gamma")  # the clone really happened before the failure
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "user_create", broken_user_create)
    with pytest.raises(RuntimeError, match="disk full"):
        _provision()
    _nothing_left("gamma")


def test_failure_on_a_conflicting_domain_leaves_nothing_behind(alpha: TenantWorld) -> None:
    # A real constraint violation half-way: the host name already belongs to another tenant.
    Domain.objects.create(domain="gamma.verdant.test", tenant=alpha.tenant)
    with pytest.raises(Exception, match="duplicate key"):
        _provision()
    assert not Tenant.objects.filter(slug="gamma").exists()
    assert not schema_exists("t_gamma")


def test_cli_exits_non_zero_with_one_line_for_an_existing_slug(alpha: TenantWorld) -> None:
    database = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}",
        "DJANGO_SETTINGS_MODULE": "settings.test",
    }
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "provision_tenant",
            "alpha",
            "--name",
            "X",
            "--kind",
            "farm",
            "--admin-email",
            "x@example.com",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "CommandError: provision_tenant: tenant 'alpha' already exists"


def test_archive_keeps_data_and_drop_removes_everything(db: None) -> None:
    _provision()
    call_command("archive_tenant", "gamma", stdout=io.StringIO())
    tenant = Tenant.objects.get(slug="gamma")
    assert tenant.status == Tenant.Status.SUSPENDED
    with tenant_context(tenant):
        assert User.objects.count() == 1

    with pytest.raises(CommandError, match="--confirm"):
        call_command("drop_tenant", "gamma", stdout=io.StringIO())
    assert schema_exists("t_gamma")
    call_command("drop_tenant", "gamma", confirm=True, stdout=io.StringIO())
    _nothing_left("gamma")


def test_archive_or_drop_of_unknown_tenant_fails_cleanly(db: None) -> None:
    with pytest.raises(CommandError, match="no tenant 'ghost'"):
        call_command("archive_tenant", "ghost", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no tenant 'ghost'"):
        call_command("drop_tenant", "ghost", confirm=True, stdout=io.StringIO())


def test_template_cannot_be_dropped_or_archived(db: None) -> None:
    with pytest.raises(services.ProvisioningError):
        services.tenant_drop(slug=services.TEMPLATE_SLUG)
    assert schema_exists(settings.TENANT_TEMPLATE_SCHEMA)


def test_drift_check_passes_on_a_clean_database(alpha: TenantWorld, beta: TenantWorld) -> None:
    out = io.StringIO()
    call_command("check_schema_drift", stdout=out)
    assert "No drift" in out.getvalue()


def test_drift_check_catches_a_schema_that_missed_a_migration(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM t_beta.django_migrations WHERE app = 'accounts' AND name = '0001_initial'"
        )
    err = io.StringIO()
    with pytest.raises(CommandError, match="1 schema"):
        call_command("check_schema_drift", stdout=io.StringIO(), stderr=err)
    assert (
        "t_beta: missing 1 migration(s) the template has: accounts.0001_initial" in err.getvalue()
    )
    assert "t_alpha" not in err.getvalue()


def test_drift_check_catches_differing_columns(alpha: TenantWorld) -> None:
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE t_alpha.accounts_user DROP COLUMN full_name")
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("check_schema_drift", stdout=io.StringIO(), stderr=err)
    assert "t_alpha: columns differ from the template in: accounts_user" in err.getvalue()


def test_stale_template_is_migrated_before_cloning(db: None) -> None:
    template = settings.TENANT_TEMPLATE_SCHEMA
    with connection.cursor() as cursor:
        cursor.execute(
            # The tenants app's latest migration: an earlier one would leave a later one applied
            # before its dependency.
            f"DELETE FROM {template}.django_migrations WHERE app = 'tenants' AND name = "
            f"(SELECT max(name) FROM {template}.django_migrations WHERE app = 'tenants')"
        )
    _provision()
    applied = applied_migrations([template, "t_gamma"])
    assert applied[template] == applied["t_gamma"] == expected_migrations()
