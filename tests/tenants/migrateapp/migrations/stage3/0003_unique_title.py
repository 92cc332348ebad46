"""Fails in a schema holding two notes with the same title (the continue-on-error test)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("migrateapp", "0002_slow_priority")]

    operations = [
        migrations.AddConstraint(
            model_name="note",
            constraint=models.UniqueConstraint(fields=["title"], name="migrateapp_note_title_unique"),
        ),
    ]
