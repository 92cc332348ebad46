from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from tenants.migration_state import drift_report
from tenants.models import Tenant


class Command(BaseCommand):
    help = (
        "Compare every tenant schema's applied migrations and columns with the template's; "
        "exit 1 if any differ."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        schemas = list(
            Tenant.objects.filter(is_template=False)
            .order_by("schema_name")
            .values_list("schema_name", flat=True)
        )
        verbose = options["verbosity"] >= 1

        def progress(done: int, total: int) -> None:
            if verbose:
                self.stdout.write(f"  checked {done}/{total} tenant schemas")

        findings = drift_report(
            template_schema=settings.TENANT_TEMPLATE_SCHEMA,
            tenant_schemas=schemas,
            progress=progress,
        )
        for schema, reasons in findings.items():
            for reason in reasons:
                self.stderr.write(f"{schema}: {reason}")
        if findings:
            raise CommandError(
                f"check_schema_drift: {len(findings)} schema(s) drifted; run "
                "`manage.py migrate_schemas` (then this check again)."
            )
        self.stdout.write(f"No drift: {len(schemas)} tenant schema(s) match the template.")
