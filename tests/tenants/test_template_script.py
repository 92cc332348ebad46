"""New schemas from the replayed template script: identical to the template, with the clone as
the fallback, and no session settings left behind."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django_tenants.utils import quote_schema_name

from tenants import template_script

# Everything a schema holds, by kind, with the schema's own name taken out of definitions so two
# schemas built alike compare equal.
_CATALOG_SQL = """
SELECT 'column', c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
    || ':' || a.attnotnull
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'relation', c.relkind::text || ':' || c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(schema)s
UNION ALL
-- A partial index's predicate is compared by presence: a dump and restore may spell an
-- equivalent expression differently (ARRAY[...]::text[] against ARRAY[...::text]).
SELECT 'index', regexp_replace(replace(pg_get_indexdef(i.indexrelid), %(schema)s || '.', ''),
    ' WHERE .*$', ' WHERE (predicate)')
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'constraint', co.conname || ':' || replace(pg_get_constraintdef(co.oid), %(schema)s || '.', '')
FROM pg_constraint co JOIN pg_namespace n ON n.oid = co.connamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'trigger', t.tgname || ':' || replace(pg_get_triggerdef(t.oid), %(schema)s || '.', '')
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %(schema)s AND NOT t.tgisinternal
UNION ALL
SELECT 'function', p.proname || ':' || replace(p.prosrc, %(schema)s || '.', '')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(schema)s
"""


def _catalog(schema: str) -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(_CATALOG_SQL, {"schema": schema})
        return sorted(cursor.fetchall())


def _rows(schema: str, table: str, columns: str) -> list[tuple[object, ...]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {quote_schema_name(schema)}.{table} ORDER BY 1")
        return cursor.fetchall()


def _session_settings() -> tuple[str, ...]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('search_path'), current_setting('statement_timeout'), "
            "current_setting('check_function_bodies'), current_setting('client_min_messages')"
        )
        row = cursor.fetchone()
    assert row is not None
    return tuple(row)


def _build(schema: str) -> str:
    with transaction.atomic():
        return template_script.schema_create_from_template(schema=schema)


def _assert_like_template(schema: str, *, kinds: frozenset[str] | None = None) -> None:
    template = settings.TENANT_TEMPLATE_SCHEMA
    built, original = _catalog(schema), _catalog(template)
    assert {kind for kind, _ in original} >= {"column", "index", "constraint", "trigger"}
    if kinds is not None:
        built = [entry for entry in built if entry[0] in kinds]
        original = [entry for entry in original if entry[0] in kinds]
    assert built == original
    for table, columns in (("django_migrations", "app, name"), ("auth_permission", "codename")):
        assert _rows(schema, table, columns) == _rows(template, table, columns)


def test_the_script_builds_a_schema_identical_to_the_template(db: None) -> None:
    before = _session_settings()
    assert _build("t_script_copy") == "script"
    _assert_like_template("t_script_copy")
    # The dump's SET lines (search_path '', statement_timeout 0 …) never reach the session.
    assert _session_settings() == before
    # Sequences continue where the template's are, so the next bookkeeping row gets a fresh id.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO t_script_copy.django_migrations (app, name, applied) "
            "VALUES ('probe', 'probe', now()) RETURNING id"
        )
        inserted = cursor.fetchone()
    assert inserted is not None
    earlier = [int(str(row[0])) for row in _rows("t_script_copy", "django_migrations", "id")[:-1]]
    assert int(inserted[0]) > max(earlier)


def test_without_pg_dump_the_clone_builds_the_same_schema(
    db: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The cached dump (from earlier provisioning) would be used without calling pg_dump.
    cache.delete(template_script._cache_key(template_script.template_fingerprint()))
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))  # pinned to an empty directory: no pg_dump
    with caplog.at_level(logging.WARNING, logger="tenants.template_script"):
        assert _build("t_clone_copy") == "clone"
    assert "pg_dump not found" in caplog.text
    # django-tenants' clone renames some constraints (``..._key`` for ``..._uniq``); the tables,
    # columns, triggers and functions are the template's.
    _assert_like_template("t_clone_copy", kinds=frozenset({"column", "trigger", "function"}))


def test_the_cache_key_follows_the_templates_migrations(db: None) -> None:
    before = template_script.template_fingerprint()
    assert template_script.template_fingerprint() == before
    template = quote_schema_name(settings.TENANT_TEMPLATE_SCHEMA)
    with connection.cursor() as cursor:  # rolled back with the test
        cursor.execute(
            f"INSERT INTO {template}.django_migrations (app, name, applied) "
            "VALUES ('probe', '0001_new', now())"
        )
    assert template_script.template_fingerprint() != before


def test_rename_touches_the_schema_identifier_only() -> None:
    script = (
        "CREATE SCHEMA tenant_template;\n"
        "CREATE TABLE tenant_template.t (id int);\n"
        "COMMENT ON TABLE tenant_template.t IS 'tenant_templates and tenant_template_x stay';"
    )
    renamed = template_script.rename_schema(script, source="tenant_template", target="t_new")
    assert renamed == (
        "CREATE SCHEMA t_new;\n"
        "CREATE TABLE t_new.t (id int);\n"
        "COMMENT ON TABLE t_new.t IS 'tenant_templates and tenant_template_x stay';"
    )


def test_a_template_built_again_gets_another_cache_key(db: None) -> None:
    """A migration edited in place (development, CI) keeps its name: the time it was applied
    tells the rebuilt template from the old one, so a stale cached dump is never replayed."""
    before = template_script.template_fingerprint()
    template = quote_schema_name(settings.TENANT_TEMPLATE_SCHEMA)
    with connection.cursor() as cursor:  # rolled back with the test
        cursor.execute(
            f"UPDATE {template}.django_migrations SET applied = applied + interval '1 second' "
            "WHERE id = (SELECT max(id) FROM " + template + ".django_migrations)"
        )
    assert template_script.template_fingerprint() != before
