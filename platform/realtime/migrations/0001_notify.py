"""Wake the realtime relays: an AFTER INSERT statement trigger on the change log notifies
``verdant_realtime`` with the schema's name. NOTIFY is delivered on commit only (never before),
once per distinct payload per transaction, and carries no row data: the relay reads the log."""

from django.db import migrations

CREATE = [
    """
    CREATE FUNCTION realtime_notify() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
    BEGIN
        PERFORM pg_notify('verdant_realtime', TG_TABLE_SCHEMA);
        RETURN NULL;
    END;
    $fn$
    """,
    "CREATE TRIGGER realtime_notify AFTER INSERT ON sync_change "
    "FOR EACH STATEMENT EXECUTE FUNCTION realtime_notify()",
]
DROP = [
    "DROP TRIGGER IF EXISTS realtime_notify ON sync_change",
    "DROP FUNCTION IF EXISTS realtime_notify()",
]


class Migration(migrations.Migration):
    dependencies = [("sync", "0005_change_log_by_scope")]

    operations = [migrations.RunSQL(sql=CREATE, reverse_sql=DROP)]
