"""FHIR (issue 17): the tenant's MRN identifier system, fixed here for existing tenants exactly as
provisioning fixes it for new ones, and ``updated_at`` (the Organization's meta.lastUpdated)."""

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def mrn_systems_fix(apps, schema_editor):
    # The same rule as tenants.services.mrn_system_default, written out: a migration must not
    # import code that may change after it.
    Tenant = apps.get_model("tenants", "Tenant")
    for tenant in Tenant.objects.filter(mrn_system=""):
        tenant.mrn_system = f"https://{settings.BASE_DOMAIN}/fhir/sid/{tenant.slug}/mrn"
        tenant.save(update_fields=["mrn_system"])


class Migration(migrations.Migration):
    dependencies = [("tenants", "0005_migration_runs")]

    operations = [
        migrations.AddField(
            model_name="tenant",
            name="updated_at",
            field=models.DateTimeField(auto_now=True, default=timezone.now),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="tenant",
            name="mrn_system",
            field=models.CharField(default="", editable=False, max_length=255),
        ),
        migrations.RunPython(mrn_systems_fix, migrations.RunPython.noop),
    ]
