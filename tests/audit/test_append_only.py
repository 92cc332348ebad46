"""Audit events cannot be changed or deleted: not through the ORM, and not with raw SQL from the
app's own connection, in a schema cloned from the template (alpha) and in the template itself."""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from django.conf import settings
from django.db import ProgrammingError, connection, transaction
from django_tenants.utils import schema_context

from audit.models import (
    AUDIT_EVENT_DELETE_FORBIDDEN,
    AUDIT_EVENT_UPDATE_FORBIDDEN,
    AuditEvent,
    AuditEventImmutableError,
)
from tests.audit.conftest import record
from tests.conftest import TenantWorld

PATIENT = uuid.UUID("01900000-0000-7000-8000-0000000000aa")
FUNCTION = "audit_event_refuse_change"
TRIGGERS = ("audit_auditevent_refuse_change", "audit_auditevent_refuse_truncate")
migration = importlib.import_module("audit.migrations.0001_initial")


class _UndoError(Exception):
    """Raised to roll back the savepoint of ``_undone``."""


@contextmanager
def _undone() -> Iterator[None]:
    """Run a block in a savepoint, then roll it back, DDL included (PostgreSQL DDL is
    transactional), so a test can break one schema's guard without harming the others."""
    try:
        with transaction.atomic():
            yield
            raise _UndoError
    except _UndoError:
        pass


def _snapshot(event: AuditEvent) -> tuple[object, ...]:
    stored = AuditEvent.objects.get(pk=event.pk)
    return (stored.action, stored.object_ids, stored.changed_fields, stored.allowed)


def _refused(sql: str, params: Sequence[Any] = ()) -> str:
    """Run ``sql`` in a savepoint (so the test transaction survives the error); its message."""
    with (
        pytest.raises(ProgrammingError) as caught,
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)
    return str(caught.value)


# --- ORM -------------------------------------------------------------------------------------------


def test_orm_refuses_updates_and_deletes(alpha: TenantWorld) -> None:
    with schema_context(alpha.tenant.schema_name):
        event = record(object_ids=[PATIENT], changed_fields=["phone"])
        before = _snapshot(event)

        with pytest.raises(AuditEventImmutableError, match=AUDIT_EVENT_UPDATE_FORBIDDEN):
            AuditEvent.objects.filter(pk=event.pk).update(action="delete")
        with pytest.raises(AuditEventImmutableError, match=AUDIT_EVENT_UPDATE_FORBIDDEN):
            AuditEvent.objects.update(allowed=False)
        with pytest.raises(AuditEventImmutableError, match=AUDIT_EVENT_DELETE_FORBIDDEN):
            AuditEvent.objects.all().delete()
        with pytest.raises(AuditEventImmutableError, match=AUDIT_EVENT_DELETE_FORBIDDEN):
            AuditEvent.objects.filter(pk=event.pk).delete()
        with pytest.raises(AuditEventImmutableError, match=AUDIT_EVENT_DELETE_FORBIDDEN):
            event.delete()

        stored = AuditEvent.objects.get(pk=event.pk)
        stored.action = AuditEvent.Action.DELETE
        with pytest.raises(AuditEventImmutableError, match=AUDIT_EVENT_UPDATE_FORBIDDEN):
            stored.save()
        with pytest.raises(AuditEventImmutableError, match=AUDIT_EVENT_UPDATE_FORBIDDEN):
            stored.save(update_fields=["action"])
        with pytest.raises(AuditEventImmutableError, match=AUDIT_EVENT_UPDATE_FORBIDDEN):
            AuditEvent.objects.bulk_update([stored], ["action"])
        with pytest.raises(AuditEventImmutableError, match=AUDIT_EVENT_UPDATE_FORBIDDEN):
            AuditEvent.objects.update_or_create(pk=event.pk, defaults={"action": "delete"})

        # A new instance carrying an existing id is an INSERT, which the primary key refuses.
        clone = AuditEvent(id=event.pk, action="delete", object_type="clinical.patient")
        with pytest.raises(Exception, match="duplicate key"), transaction.atomic():
            clone.save()

        assert _snapshot(event) == before
        assert AuditEvent.objects.count() == 1


# --- database triggers -----------------------------------------------------------------------------


@pytest.fixture(params=["cloned_tenant", "template"])
def guarded_schema(request: pytest.FixtureRequest, alpha: TenantWorld) -> Iterator[str]:
    """Runs the test in alpha's schema (cloned from the template) and in the template."""
    cloned = request.param == "cloned_tenant"
    schema = alpha.tenant.schema_name if cloned else settings.TENANT_TEMPLATE_SCHEMA
    with schema_context(schema):
        yield schema


def test_raw_update_is_refused(guarded_schema: str) -> None:
    event = record(object_ids=[PATIENT])
    before = _snapshot(event)
    message = _refused(
        "UPDATE audit_auditevent SET action = 'delete', object_ids = '{}' WHERE id = %s",
        (event.pk,),
    )
    assert f"{guarded_schema}.audit_auditevent is append-only: UPDATE is not allowed" in message
    assert _snapshot(event) == before


def test_raw_delete_is_refused(guarded_schema: str) -> None:
    event = record(object_ids=[PATIENT])
    message = _refused("DELETE FROM audit_auditevent")
    assert f"{guarded_schema}.audit_auditevent is append-only: DELETE is not allowed" in message
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_truncate_is_refused(guarded_schema: str) -> None:
    record(object_ids=[PATIENT])
    message = _refused("TRUNCATE audit_auditevent")
    assert f"{guarded_schema}.audit_auditevent is append-only: TRUNCATE is not allowed" in message
    assert AuditEvent.objects.count() == 1


def test_upsert_cannot_overwrite_an_event(guarded_schema: str) -> None:
    event = record(object_ids=[PATIENT])
    before = _snapshot(event)
    overwrite = AuditEvent(id=event.pk, action="delete", object_type="clinical.patient")
    with pytest.raises(ProgrammingError, match="append-only"), transaction.atomic():
        AuditEvent.objects.bulk_create(
            [overwrite], update_conflicts=True, unique_fields=["id"], update_fields=["action"]
        )
    assert _snapshot(event) == before


def test_inserts_are_allowed(guarded_schema: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO audit_auditevent (id, action, allowed, object_type, object_ids,"
            " changed_fields, actor_email, user_agent, request_id, trace_id)"
            " VALUES (%s, 'read', true, 'clinical.patient', %s, '{}', '', '', '', '')",
            (uuid.uuid4(), [PATIENT]),
        )
    assert AuditEvent.objects.get().object_ids == [PATIENT]


# --- where the guard lives --------------------------------------------------------------------------


def _trigger_functions(schema: str) -> dict[str, str]:
    """trigger name -> schema of the function it executes, for ``<schema>.audit_auditevent``."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.tgname, fn_ns.nspname
            FROM pg_trigger t
            JOIN pg_class c ON c.oid = t.tgrelid
            JOIN pg_namespace table_ns ON table_ns.oid = c.relnamespace
            JOIN pg_proc p ON p.oid = t.tgfoid
            JOIN pg_namespace fn_ns ON fn_ns.oid = p.pronamespace
            WHERE table_ns.nspname = %s AND c.relname = 'audit_auditevent' AND NOT t.tgisinternal
            """,
            [schema],
        )
        return dict(cursor.fetchall())


def _function_schemas() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE p.proname = %s",
            [FUNCTION],
        )
        return {row[0] for row in cursor.fetchall()}


def test_every_schema_owns_its_guard(alpha: TenantWorld, beta: TenantWorld) -> None:
    schemas = [
        settings.TENANT_TEMPLATE_SCHEMA,
        alpha.tenant.schema_name,
        beta.tenant.schema_name,
    ]
    for schema in schemas:
        # The clone's triggers run the clone's own function, not the template's.
        assert _trigger_functions(schema) == dict.fromkeys(TRIGGERS, schema)
    assert set(schemas) <= _function_schemas()
    assert "public" not in _function_schemas()


def test_one_tenant_losing_its_guard_leaves_the_others_guarded(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    with schema_context(alpha.tenant.schema_name):
        alpha_event = record(object_ids=[PATIENT])
    with schema_context(beta.tenant.schema_name):
        beta_event = record(object_ids=[PATIENT])
    update = "UPDATE audit_auditevent SET action = 'export' WHERE id = %s"

    with _undone():
        with connection.cursor() as cursor:
            cursor.execute(f"DROP FUNCTION {beta.tenant.schema_name}.{FUNCTION}() CASCADE")
        with schema_context(alpha.tenant.schema_name):
            assert "append-only" in _refused(update, (alpha_event.pk,))
        with schema_context(settings.TENANT_TEMPLATE_SCHEMA):
            assert _trigger_functions(settings.TENANT_TEMPLATE_SCHEMA) == dict.fromkeys(
                TRIGGERS, settings.TENANT_TEMPLATE_SCHEMA
            )
        with schema_context(beta.tenant.schema_name), connection.cursor() as cursor:
            cursor.execute(update, (beta_event.pk,))  # beta alone is unguarded now
            assert cursor.rowcount == 1

    with schema_context(beta.tenant.schema_name):
        assert "append-only" in _refused(update, (beta_event.pk,))
        assert AuditEvent.objects.get(pk=beta_event.pk).action == "read"


def test_reverse_sql_removes_exactly_this_schemas_guard(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    with _undone():
        with schema_context(alpha.tenant.schema_name), connection.cursor() as cursor:
            for statement in migration.DROP_TRIGGERS:
                cursor.execute(statement)
        assert _trigger_functions(alpha.tenant.schema_name) == {}
        assert alpha.tenant.schema_name not in _function_schemas()
        assert _trigger_functions(beta.tenant.schema_name) == dict.fromkeys(
            TRIGGERS, beta.tenant.schema_name
        )
    assert _trigger_functions(alpha.tenant.schema_name) == dict.fromkeys(
        TRIGGERS, alpha.tenant.schema_name
    )


def test_clones_keep_the_indexes(alpha: TenantWorld) -> None:
    def indexes(schema: str) -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT replace(indexdef, schemaname || '.', '') FROM pg_indexes"
                " WHERE schemaname = %s AND tablename = 'audit_auditevent'",
                [schema],
            )
            return {row[0] for row in cursor.fetchall()}

    cloned = indexes(alpha.tenant.schema_name)
    assert cloned == indexes(settings.TENANT_TEMPLATE_SCHEMA)
    assert any("USING gin (object_ids)" in index for index in cloned)
