# ruff: noqa: S608  (trigger DDL built from constants in this file)
"""The change log (``sync_change``) and the triggers that write it.

One ``AFTER ... FOR EACH STATEMENT`` trigger per event (INSERT, UPDATE, DELETE) on every synced
table, with transition tables: a statement writing 5,000 rows costs one extra INSERT ... SELECT,
not 5,000 trigger calls. They fire for every write path — ORM ``save()``, ``update()``,
``bulk_create`` / ``bulk_update``, raw SQL, COPY — in the writing transaction, and record
``pg_current_xact_id()`` (xid8), which the pull compares with ``pg_snapshot_xmin`` (docs/sync.md).

Schema placement follows audit's append-only trigger (audit/migrations/0001_initial.py): the
functions are created in the schema being migrated (the template or a tenant) and every tenant
cloned from the template gets its own copies. Every statement inside them is qualified with
``TG_TABLE_SCHEMA``, so a write to tenant A's table always logs into tenant A's ``sync_change``,
whatever the session's search_path is.

A soft delete (``archived_at`` set) is logged as ``D``: the pull sends a tombstone. An UPDATE that
changes a primary key logs the old id as ``D`` and the new one as ``U``.
``scope_ids`` holds the row's container (farm or facility id; the nil UUID for the tenant-wide
crop catalogue) before and after the change, so a row moved out of a scope still reaches the
devices that must drop it.
"""

from django.db import migrations

NIL = "'00000000-0000-0000-0000-000000000000'::uuid"

# wire name -> (table, container expression over alias {a}); {s} is the schema (format's %1$I).
TABLES = {
    "farms": ("farms_farm", "{a}.id"),
    "fields": ("farms_field", "{a}.farm_id"),
    "crops": ("farms_crop", NIL),
    "plantings": (
        "farms_planting",
        "(SELECT f.farm_id FROM %1$I.farms_field f WHERE f.id = {a}.field_id)",
    ),
    "observations": (
        "farms_observation",
        "(SELECT f.farm_id FROM %1$I.farms_field f WHERE f.id = {a}.field_id)",
    ),
    "harvests": (
        "farms_harvest",
        "(SELECT f.farm_id FROM %1$I.farms_planting p JOIN %1$I.farms_field f"
        " ON f.id = p.field_id WHERE p.id = {a}.planting_id)",
    ),
    "patients": ("clinical_patient", "{a}.facility_id"),
    "appointments": ("clinical_appointment", "{a}.facility_id"),
}

# Archiving a field or planting hides the rows under it (the pull's scope follows the farm
# selectors), so the change is logged for those rows too: devices get their tombstones (and their
# rows back when it is unarchived). Archiving a farm or facility changes the user's scope digest
# instead (a replacement run; sync.selectors.sync_scope).
_ARCHIVE_CHANGED = (
    "SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id"
    " WHERE n.archived_at IS DISTINCT FROM o.archived_at"
)
CASCADES = {
    "fields": f"""
        WITH changed AS ({_ARCHIVE_CHANGED})
        INSERT INTO %1$I.sync_change (tbl, row_id, op, scope_ids)
        SELECT 'plantings', p.id, 'U', ARRAY[f.farm_id]
          FROM %1$I.farms_planting p JOIN %1$I.farms_field f ON f.id = p.field_id
         WHERE p.field_id IN (SELECT id FROM changed)
        UNION ALL
        SELECT 'observations', ob.id, 'U', ARRAY[f.farm_id]
          FROM %1$I.farms_observation ob JOIN %1$I.farms_field f ON f.id = ob.field_id
         WHERE ob.field_id IN (SELECT id FROM changed)
        UNION ALL
        SELECT 'harvests', h.id, 'U', ARRAY[f.farm_id]
          FROM %1$I.farms_harvest h JOIN %1$I.farms_planting p ON p.id = h.planting_id
          JOIN %1$I.farms_field f ON f.id = p.field_id
         WHERE p.field_id IN (SELECT id FROM changed)
    """,
    "plantings": f"""
        WITH changed AS ({_ARCHIVE_CHANGED})
        INSERT INTO %1$I.sync_change (tbl, row_id, op, scope_ids)
        SELECT 'harvests', h.id, 'U', ARRAY[f.farm_id]
          FROM %1$I.farms_harvest h JOIN %1$I.farms_planting p ON p.id = h.planting_id
          JOIN %1$I.farms_field f ON f.id = p.field_id
         WHERE h.planting_id IN (SELECT id FROM changed)
    """,
}

CREATE_LOG = [
    """
    CREATE TABLE sync_change (
        seq        bigserial   PRIMARY KEY,
        txid       xid8        NOT NULL DEFAULT pg_current_xact_id(),
        tbl        text        NOT NULL,
        row_id     uuid        NOT NULL,
        op         char(1)     NOT NULL CHECK (op IN ('U', 'D')),
        scope_ids  uuid[]      NOT NULL,
        changed_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    # The pull pages by (txid, seq): an index range scan, whatever the log's depth.
    "CREATE INDEX sync_change_txid_seq ON sync_change (txid, seq)",
    "CREATE INDEX sync_change_scope ON sync_change USING gin (scope_ids)",
    # Compaction: duplicates per row, and expired tombstones.
    "CREATE INDEX sync_change_row ON sync_change (tbl, row_id, seq)",
    "CREATE INDEX sync_change_tombstone_age ON sync_change (changed_at) WHERE op = 'D'",
]
DROP_LOG = ["DROP TABLE IF EXISTS sync_change"]


def _function(wire: str, table: str, container: str) -> str:
    new = container.format(a="n")
    old = container.format(a="o")
    op = "CASE WHEN n.archived_at IS NULL THEN 'U' ELSE 'D' END"
    insert = "INSERT INTO %1$I.sync_change (tbl, row_id, op, scope_ids) "
    cascade = ""
    if wire in CASCADES:
        cascade = f"\n            EXECUTE format($q${CASCADES[wire]}$q$, TG_TABLE_SCHEMA);"
    return f"""
    CREATE FUNCTION sync_log_{wire}() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            EXECUTE format($q${insert}
                SELECT '{wire}', n.id, {op}, array_remove(ARRAY[{new}], NULL)
                FROM new_rows n$q$, TG_TABLE_SCHEMA);
        ELSIF TG_OP = 'UPDATE' THEN
            EXECUTE format($q${insert}
                SELECT '{wire}', n.id, {op},
                       ARRAY(SELECT DISTINCT s FROM unnest(ARRAY[{new}, {old}]) s
                             WHERE s IS NOT NULL)
                FROM new_rows n LEFT JOIN old_rows o ON o.id = n.id
                UNION ALL
                SELECT '{wire}', o.id, 'D', array_remove(ARRAY[{old}], NULL)
                FROM old_rows o WHERE NOT EXISTS (SELECT 1 FROM new_rows n WHERE n.id = o.id)
                $q$, TG_TABLE_SCHEMA);{cascade}
        ELSE
            EXECUTE format($q${insert}
                SELECT '{wire}', o.id, 'D', array_remove(ARRAY[{old}], NULL)
                FROM old_rows o$q$, TG_TABLE_SCHEMA);
        END IF;
        RETURN NULL;
    END;
    $fn$
    """


def _triggers(wire: str, table: str) -> list[str]:
    return [
        f"CREATE TRIGGER sync_log_ins AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION sync_log_{wire}()",
        f"CREATE TRIGGER sync_log_upd AFTER UPDATE ON {table} "
        "REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION sync_log_{wire}()",
        f"CREATE TRIGGER sync_log_del AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION sync_log_{wire}()",
    ]


CREATE_TRIGGERS: list[str] = []
DROP_TRIGGERS: list[str] = []
for _wire, (_table, _container) in TABLES.items():
    CREATE_TRIGGERS.append(_function(_wire, _table, _container))
    CREATE_TRIGGERS.extend(_triggers(_wire, _table))
    DROP_TRIGGERS.extend(
        f"DROP TRIGGER IF EXISTS {name} ON {_table}"
        for name in ("sync_log_ins", "sync_log_upd", "sync_log_del")
    )
    DROP_TRIGGERS.append(f"DROP FUNCTION IF EXISTS sync_log_{_wire}()")


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0001_initial"),
        ("clinical", "0001_initial"),
        ("farms", "0001_initial"),
    ]

    operations = [
        migrations.RunSQL(sql=CREATE_LOG, reverse_sql=DROP_LOG),
        migrations.RunSQL(sql=CREATE_TRIGGERS, reverse_sql=DROP_TRIGGERS),
    ]
