from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("benchapp", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="note",
            name="priority",
            field=models.PositiveSmallIntegerField(db_index=True, default=3),
        ),
    ]
