"""Which tables live where: contenttypes only in public; users, sessions, admin log, guardian and
the JWT blacklist in every tenant schema (users, sessions and admin log also in public)."""

from django.db import connection

from tests.conftest import TenantWorld

TENANT_TABLES = {
    "accounts_user",
    "django_session",
    "django_admin_log",
    "guardian_userobjectpermission",
    "token_blacklist_outstandingtoken",
    "token_blacklist_blacklistedtoken",
    "django_migrations",
}
PUBLIC_ONLY = {
    "django_content_type",
    "tenants_tenant",
    "tenants_domain",
    "tenants_plan",
    "tenants_templatescript",
}


def _tables(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", [schema]
        )
        return {row[0] for row in cursor.fetchall()}


def test_tenant_schema_holds_identity_tables_but_no_registry(alpha: TenantWorld) -> None:
    tables = _tables("t_alpha")
    assert tables >= TENANT_TABLES
    assert not tables & PUBLIC_ONLY


def test_public_schema_holds_the_registry_and_operator_accounts(db: None) -> None:
    tables = _tables("public")
    assert tables >= PUBLIC_ONLY | {"accounts_user", "django_session", "django_admin_log"}
    assert "guardian_userobjectpermission" not in tables
    assert "token_blacklist_outstandingtoken" not in tables
