"""Migration runs and their failed schemas (tenants.migration_progress): public schema only."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("tenants", "0004_template_script"),
    ]

    operations = [
        migrations.CreateModel(
            name="MigrationRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("started_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("running", "running"),
                            ("succeeded", "succeeded"),
                            ("failed", "failed (see failures)"),
                            ("interrupted", "interrupted"),
                        ],
                        default="running",
                        max_length=16,
                    ),
                ),
                ("executor", models.CharField(max_length=32)),
                ("parallel", models.PositiveIntegerField(default=1)),
                ("continue_on_error", models.BooleanField(default=False)),
                ("host", models.CharField(blank=True, max_length=255)),
                (
                    "tenant_schemas",
                    models.PositiveIntegerField(help_text="Tenant schemas the run considered."),
                ),
                (
                    "already_current",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="Skipped: at the latest migration when the run started.",
                    ),
                ),
                ("to_migrate", models.PositiveIntegerField(default=0)),
                ("done", models.PositiveIntegerField(default=0)),
                ("failed", models.PositiveIntegerField(default=0)),
            ],
            options={
                "ordering": ["-started_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="MigrationFailure",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("schema_name", models.CharField(max_length=63)),
                ("error", models.TextField()),
                ("failed_at", models.DateTimeField(auto_now_add=True)),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="failures",
                        to="tenants.migrationrun",
                    ),
                ),
            ],
            options={
                "ordering": ["schema_name"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("run", "schema_name"), name="migration_failure_once"
                    )
                ],
            },
        ),
    ]
