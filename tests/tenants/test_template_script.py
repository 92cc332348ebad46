"""New schemas from the replayed template script: identical to the template, with the clone as
the fallback, and no session settings left behind. The script is stored in the public schema's
``TemplateScript`` only, never read from or written to Redis (issue 22, item 4)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django_tenants.utils import quote_schema_name

from tenants import services, template_script
from tenants.models import TemplateScript

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
    # The stored dump (from earlier provisioning) would be used without calling pg_dump.
    TemplateScript.objects.all().delete()  # rolled back with the test
    monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))  # pinned to an empty directory: no pg_dump
    with caplog.at_level(logging.WARNING, logger="tenants.template_script"):
        assert _build("t_clone_copy") == "clone"
    assert "pg_dump not found" in caplog.text
    # django-tenants' clone renames some constraints (``..._key`` for ``..._uniq``); the tables,
    # columns, triggers and functions are the template's.
    _assert_like_template("t_clone_copy", kinds=frozenset({"column", "trigger", "function"}))


def test_the_script_key_follows_the_templates_migrations(db: None) -> None:
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


def test_a_template_built_again_gets_another_script_key(db: None) -> None:
    """A migration edited in place (development, CI) keeps its name: the time it was applied
    tells the rebuilt template from the old one, so a stale stored dump is never replayed."""
    before = template_script.template_fingerprint()
    template = quote_schema_name(settings.TENANT_TEMPLATE_SCHEMA)
    with connection.cursor() as cursor:  # rolled back with the test
        cursor.execute(
            f"UPDATE {template}.django_migrations SET applied = applied + interval '1 second' "
            "WHERE id = (SELECT max(id) FROM " + template + ".django_migrations)"
        )
    assert template_script.template_fingerprint() != before


# What the script's Redis key was before issue 22 (with the cache's own prefix and schema added by
# its key function): nothing may be stored there any more, nor read from it.
def _old_cache_key(fingerprint: str) -> str:
    return f"tenants:template-script:v2:{settings.TENANT_TEMPLATE_SCHEMA}:{fingerprint}"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    try:
        yield client
    finally:
        client.close()


def _redis_keys_for(client: redis.Redis, fingerprint: str) -> list[str]:
    """Every Redis key naming this database's template fingerprint (other test runs sharing the
    server have templates applied at other times, so other fingerprints)."""
    return [key for key in client.scan_iter(match="*template*", count=1000) if fingerprint in key]


def _provision(slug: str) -> None:
    services.tenant_provision(
        slug=slug,
        name=f"{slug} org",
        kind="clinic",
        admin_email=f"admin@{slug}.example",
        admin_password="Template-script-9",
    )


def test_provisioning_stores_the_script_in_the_public_schema_never_in_redis(
    db: None, redis_client: redis.Redis
) -> None:
    fingerprint = template_script.template_fingerprint()
    for key in _redis_keys_for(redis_client, fingerprint):  # left by code before issue 22
        redis_client.delete(key)
    TemplateScript.objects.all().delete()  # a miss: dumped and stored (rolled back with the test)
    _provision("scripta")
    _provision("scriptb")  # a hit: read back
    _assert_like_template("t_scripta")
    _assert_like_template("t_scriptb")
    stored = TemplateScript.objects.get()
    assert stored.key == template_script.script_key(fingerprint)
    assert "CREATE TABLE" in stored.script
    assert _redis_keys_for(redis_client, fingerprint) == []
    assert cache.get(_old_cache_key(fingerprint)) is None


def test_a_script_planted_in_redis_is_never_executed(
    db: None, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fingerprint = template_script.template_fingerprint()
    planted = (
        f"CREATE SCHEMA {settings.TENANT_TEMPLATE_SCHEMA}; "
        "CREATE TABLE public.planted_by_redis (id int);"
    )
    old_key = _old_cache_key(fingerprint)
    cache.set(old_key, planted, 300)
    try:
        # With the script stored, and on a miss (dumped afresh), and with no pg_dump at all.
        assert _build("t_planted_hit") == "script"
        TemplateScript.objects.all().delete()
        assert _build("t_planted_miss") == "script"
        TemplateScript.objects.all().delete()
        monkeypatch.setenv("PG_BIN_DIR", str(tmp_path))  # no pg_dump: the clone, not Redis
        assert _build("t_planted_clone") == "clone"
        _provision("planted")
    finally:
        cache.delete(old_key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('public.planted_by_redis')")
        row = cursor.fetchone()
    assert row == (None,)
    _assert_like_template("t_planted_hit")
    _assert_like_template("t_planted_miss")


def test_a_new_fingerprint_stores_a_new_script_and_the_old_one_goes(
    db: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_key = template_script.script_key(template_script.template_fingerprint())
    assert template_script.template_script() is not None
    assert list(TemplateScript.objects.values_list("key", flat=True)) == [old_key]
    template = quote_schema_name(settings.TENANT_TEMPLATE_SCHEMA)
    with connection.cursor() as cursor:  # rolled back with the test
        cursor.execute(
            f"INSERT INTO {template}.django_migrations (app, name, applied) "
            "VALUES ('probe', '0001_new', now())"
        )
    new_key = template_script.script_key(template_script.template_fingerprint())
    assert new_key != old_key
    dumps: list[str | None] = []
    dump_template = template_script.dump_template

    def counting_dump() -> str | None:
        dumps.append(dump_template())
        return dumps[-1]

    monkeypatch.setattr(template_script, "dump_template", counting_dump)
    script = template_script.template_script()
    assert len(dumps) == 1
    assert script is not None
    assert list(TemplateScript.objects.values_list("key", "script")) == [(new_key, script)]
    # The next provisioning reads the stored script: no second dump.
    assert template_script.template_script() == script
    assert len(dumps) == 1


def test_the_stored_script_is_what_is_replayed(db: None) -> None:
    """The row is the source: what it holds is what runs (so only who can write the public schema,
    the database owner, decides what a new schema contains)."""
    script = template_script.template_script()
    assert script is not None
    marker = f"COMMENT ON SCHEMA {settings.TENANT_TEMPLATE_SCHEMA} IS 'from the public schema';"
    TemplateScript.objects.filter(
        key=template_script.script_key(template_script.template_fingerprint())
    ).update(script=script + "\n" + marker)
    assert _build("t_marked") == "script"
    with connection.cursor() as cursor:
        cursor.execute("SELECT obj_description('t_marked'::regnamespace, 'pg_namespace')")
        row = cursor.fetchone()
    assert row == ("from the public schema",)
