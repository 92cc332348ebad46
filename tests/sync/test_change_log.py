"""The change log is written by triggers in every tenant schema, for every write path."""

from __future__ import annotations

import uuid

from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from farms.models import Crop, Farm, Field, Observation
from sync.registry import sync_tables
from tests.farms.conftest import F1, F2, FIELD1, PLANTING1
from tests.sync.conftest import SyncWorld


def _log(since: int = 0) -> list[tuple[str, str, str, list[str]]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tbl, row_id::text, op, scope_ids::text[] FROM sync_change WHERE seq > %s "
            "ORDER BY seq",
            [since],
        )
        return [tuple(row) for row in cursor.fetchall()]


def _last_seq() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(max(seq), 0) FROM sync_change")
        return int(cursor.fetchone()[0])


def test_every_registered_table_has_triggers_in_the_template_and_in_tenants(
    sync_alpha: SyncWorld,
) -> None:
    tables = {table.db_table for table in sync_tables().values()}
    assert len(tables) == 8
    with connection.cursor() as cursor:
        for schema in ("tenant_template", sync_alpha.world.tenant.schema_name):
            cursor.execute(
                "SELECT c.relname, count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND t.tgname LIKE 'sync_log_%%' GROUP BY c.relname",
                [schema],
            )
            assert dict(cursor.fetchall()) == dict.fromkeys(tables, 3), schema


def test_every_write_path_records_a_change(sync_alpha: SyncWorld) -> None:
    with tenant_context(sync_alpha.world.tenant):
        start = _last_seq()
        farm = Farm.objects.get(pk=F1)
        farm.name = "saved"
        farm.save()  # save()
        Farm.objects.filter(pk=F2).update(region="updated")  # update()
        crops = Crop.objects.bulk_create([Crop(name=f"c{n}") for n in range(3)])  # bulk_create
        for crop in crops:
            crop.variety = "v"
        Crop.objects.bulk_update(crops, ["variety"])  # bulk_update
        with connection.cursor() as cursor:  # raw SQL
            cursor.execute("UPDATE farms_field SET name = 'raw' WHERE id = %s", [FIELD1])
        obs = Observation.objects.create(
            field_id=FIELD1, observed_at=timezone.now(), kind="note", text="t"
        )
        Observation.objects.filter(pk=obs.pk).update(archived_at=timezone.now())  # soft delete
        Crop.objects.filter(pk=crops[0].pk).delete()  # hard delete
        log = _log(start)
    assert ("farms", str(F1), "U", [str(F1)]) in log
    assert ("farms", str(F2), "U", [str(F2)]) in log
    assert sum(1 for entry in log if entry[0] == "crops" and entry[2] == "U") == 6
    nil = str(uuid.UUID(int=0))
    assert ("crops", str(crops[0].pk), "D", [nil]) in log
    assert ("fields", str(FIELD1), "U", [str(F1)]) in log
    assert ("observations", str(obs.pk), "U", [str(F1)]) in log
    assert ("observations", str(obs.pk), "D", [str(F1)]) in log


def test_a_move_records_both_scopes_and_archiving_a_field_logs_its_rows(
    sync_alpha: SyncWorld,
) -> None:
    with tenant_context(sync_alpha.world.tenant):
        start = _last_seq()
        Field.objects.filter(pk=FIELD1).update(farm_id=F2)
        moved = _log(start)
        assert len(moved) == 1
        assert sorted(moved[0][3]) == sorted([str(F1), str(F2)])
        start = _last_seq()
        Field.objects.filter(pk=FIELD1).update(archived_at=timezone.now())
        logged = {(tbl, op) for tbl, _, op, _ in _log(start)}
        rows = {row_id for _, row_id, _, _ in _log(start)}
    assert ("fields", "D") in logged
    assert ("plantings", "U") in logged
    assert ("observations", "U") in logged
    assert ("harvests", "U") in logged
    assert str(PLANTING1) in rows


def test_writes_log_into_their_own_tenant_whatever_the_search_path(
    sync_alpha: SyncWorld, sync_beta: SyncWorld
) -> None:
    alpha_schema = sync_alpha.world.tenant.schema_name
    with tenant_context(sync_beta.world.tenant):
        beta_before = _last_seq()
        with connection.cursor() as cursor:
            # Search path on beta, an explicit write to alpha's table.
            cursor.execute(f"UPDATE {alpha_schema}.farms_farm SET region = 'x' WHERE id = %s", [F1])
        assert _last_seq() == beta_before
    with tenant_context(sync_alpha.world.tenant):
        assert ("farms", str(F1), "U", [str(F1)]) in _log(0)
