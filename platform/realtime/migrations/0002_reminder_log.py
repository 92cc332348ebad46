# ruff: noqa: S608  (trigger DDL built from constants in this file)
"""Reminder delivery states in the change log (issue 18, items 4 and 5): statement triggers on
``clinical_remindermessage`` add ``sync_change`` entries with ``tbl = 'reminders'`` and the
appointment's facility as scope, so the ``reminders`` subscription reads them like every other
event (after commit, by ``(txid, seq)``, resumable), and ``realtime_notify`` wakes the relays.

Only a change to what the REST API shows of a reminder is logged (state, reason, attempts,
times, provider status): a write touching bookkeeping columns only (``claimed_at``,
``updated_at``, the phone/body snapshot) makes no entry and so no event. ``reminders`` is not a
synced table: the pull reads only registered tables (``tbl = ANY(tables)``), the ``changes``
nudge only the user's sync tables, and compaction treats the entries like any other.

Placed in ``realtime`` as ``sync`` 0002 places the synced tables' triggers: platform migrations
name the domain tables they hook, the Python code imports no domain app.
"""

from django.db import migrations

SHOWN = (
    "state",
    "reason",
    "attempts",
    "due_at",
    "send_after",
    "sent_at",
    "delivered_at",
    "provider_status",
    "provider_sid",
    "error_code",
)
_CHANGED = " OR ".join(f"n.{column} IS DISTINCT FROM o.{column}" for column in SHOWN)
_FACILITY = "(SELECT a.facility_id FROM %1$I.clinical_appointment a WHERE a.id = {a}.appointment_id)"
_INSERT = "INSERT INTO %1$I.sync_change (tbl, row_id, op, scope_ids) "

CREATE = [
    f"""
    CREATE FUNCTION realtime_log_reminders() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            EXECUTE format($q${_INSERT}
                SELECT 'reminders', n.id, 'U', array_remove(ARRAY[{_FACILITY.format(a="n")}], NULL)
                FROM new_rows n$q$, TG_TABLE_SCHEMA);
        ELSIF TG_OP = 'UPDATE' THEN
            EXECUTE format($q${_INSERT}
                SELECT 'reminders', n.id, 'U', array_remove(ARRAY[{_FACILITY.format(a="n")}], NULL)
                FROM new_rows n JOIN old_rows o ON o.id = n.id
                WHERE {_CHANGED}$q$, TG_TABLE_SCHEMA);
        ELSE
            EXECUTE format($q${_INSERT}
                SELECT 'reminders', o.id, 'D', array_remove(ARRAY[{_FACILITY.format(a="o")}], NULL)
                FROM old_rows o$q$, TG_TABLE_SCHEMA);
        END IF;
        RETURN NULL;
    END;
    $fn$
    """,
    "CREATE TRIGGER realtime_log_ins AFTER INSERT ON clinical_remindermessage "
    "REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION realtime_log_reminders()",
    "CREATE TRIGGER realtime_log_upd AFTER UPDATE ON clinical_remindermessage "
    "REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION realtime_log_reminders()",
    "CREATE TRIGGER realtime_log_del AFTER DELETE ON clinical_remindermessage "
    "REFERENCING OLD TABLE AS old_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION realtime_log_reminders()",
]
DROP = [
    "DROP TRIGGER IF EXISTS realtime_log_ins ON clinical_remindermessage",
    "DROP TRIGGER IF EXISTS realtime_log_upd ON clinical_remindermessage",
    "DROP TRIGGER IF EXISTS realtime_log_del ON clinical_remindermessage",
    "DROP FUNCTION IF EXISTS realtime_log_reminders()",
]


class Migration(migrations.Migration):
    dependencies = [
        ("realtime", "0001_notify"),
        ("clinical", "0002_remindersettings_remindermessage"),
    ]

    operations = [migrations.RunSQL(sql=CREATE, reverse_sql=DROP)]
