# ruff: noqa: S608  (trigger DDL built from constants in this file)
"""The change log indexed by container: ``sync_change_by_scope``, one row per (entry, scope id).

A user granted 1 farm of 1,000 must not scan every farm's entries to fill a page. ``scope_ids``
is an array (GIN-indexed, which gives no order), so a page filtered by it walked the (txid, seq)
index of the whole log. This table holds each entry once per container it names, ordered by
(scope_id, txid, seq): a scoped pull reads one ordered index range per container and merges them
(PostgreSQL's Merge Append, which stops at the page's LIMIT), so its cost follows the user's
scope, not the tenant's size.

It is written by triggers on ``sync_change`` itself (statement-level, transition tables), in the
writing transaction: the per-table log functions stay as they are. Compaction's scope merge
(an UPDATE of ``scope_ids``) rewrites the rows of the entries it touched; deleted entries take
theirs with them (ON DELETE CASCADE). Every statement is qualified with ``TG_TABLE_SCHEMA``.
"""

from django.db import migrations

CREATE = [
    """
    CREATE TABLE sync_change_by_scope (
        scope_id uuid   NOT NULL,
        txid     xid8   NOT NULL,
        seq      bigint NOT NULL REFERENCES sync_change (seq) ON DELETE CASCADE,
        tbl      text   NOT NULL,
        row_id   uuid   NOT NULL,
        PRIMARY KEY (scope_id, txid, seq)
    )
    """,
    "CREATE INDEX sync_change_by_scope_seq ON sync_change_by_scope (seq)",
    """
    CREATE FUNCTION sync_change_by_scope_index() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
    BEGIN
        IF TG_OP = 'UPDATE' THEN
            EXECUTE format($q$
                DELETE FROM %1$I.sync_change_by_scope
                 WHERE seq IN (SELECT seq FROM new_rows)$q$, TG_TABLE_SCHEMA);
        END IF;
        EXECUTE format($q$
            INSERT INTO %1$I.sync_change_by_scope (scope_id, txid, seq, tbl, row_id)
            SELECT DISTINCT s, n.txid, n.seq, n.tbl, n.row_id
              FROM new_rows n CROSS JOIN LATERAL unnest(n.scope_ids) AS s$q$, TG_TABLE_SCHEMA);
        RETURN NULL;
    END;
    $fn$
    """,
    "CREATE TRIGGER sync_change_by_scope_ins AFTER INSERT ON sync_change "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_change_by_scope_index()",
    "CREATE TRIGGER sync_change_by_scope_upd AFTER UPDATE ON sync_change "
    "REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sync_change_by_scope_index()",
    # Entries written before this migration.
    """
    INSERT INTO sync_change_by_scope (scope_id, txid, seq, tbl, row_id)
    SELECT DISTINCT s, c.txid, c.seq, c.tbl, c.row_id
      FROM sync_change c CROSS JOIN LATERAL unnest(c.scope_ids) AS s
    """,
]
DROP = [
    "DROP TRIGGER IF EXISTS sync_change_by_scope_ins ON sync_change",
    "DROP TRIGGER IF EXISTS sync_change_by_scope_upd ON sync_change",
    "DROP FUNCTION IF EXISTS sync_change_by_scope_index()",
    "DROP TABLE IF EXISTS sync_change_by_scope",
]


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0004_scope_snapshot"),
    ]

    operations = [migrations.RunSQL(sql=CREATE, reverse_sql=DROP)]
