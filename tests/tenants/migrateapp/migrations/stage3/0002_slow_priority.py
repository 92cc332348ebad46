"""Sleeps MIGRATEAPP_SLEEP seconds per schema (so a test can kill the run part-way), then adds a
column with a default."""

import os
import time

from django.db import migrations, models


def pause(apps: object, schema_editor: object) -> None:
    time.sleep(float(os.environ.get("MIGRATEAPP_SLEEP", "0")))


class Migration(migrations.Migration):
    dependencies = [("migrateapp", "0001_initial")]

    operations = [
        migrations.RunPython(pause, migrations.RunPython.noop),
        migrations.AddField(
            model_name="note",
            name="priority",
            field=models.PositiveSmallIntegerField(default=3),
        ),
    ]
