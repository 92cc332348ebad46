"""Extensions every tenant schema relies on (btree_gist for exclusion constraints, pg_trgm for
search). An extension exists once per database; created here, in public, it is visible to every
tenant through search_path "<tenant>, public". Created from a tenant migration instead, it would
land in whichever tenant schema ran first and be invisible to the others."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("tenants", "0002_default_plans")]

    operations = [
        migrations.RunSQL(
            "CREATE EXTENSION IF NOT EXISTS btree_gist SCHEMA public;"
            "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public;",
            reverse_sql=migrations.RunSQL.noop,
        ),
    ]
