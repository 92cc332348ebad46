"""The template script's store (tenants.template_script): public schema only, never Redis."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenants", "0003_postgres_extensions")]

    operations = [
        migrations.CreateModel(
            name="TemplateScript",
            fields=[
                ("key", models.CharField(max_length=128, primary_key=True, serialize=False)),
                ("script", models.TextField()),
                ("stored_at", models.DateTimeField(auto_now=True)),
            ],
        ),
    ]
