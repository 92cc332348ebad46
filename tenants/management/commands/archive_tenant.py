from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import ProvisioningError, tenant_archive


class Command(BaseCommand):
    help = "Suspend a tenant (its hosts answer 403 tenant_suspended); all data is kept."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            tenant = tenant_archive(slug=options["slug"])
        except ProvisioningError as exc:
            raise CommandError(f"archive_tenant: {exc}") from None
        self.stdout.write(
            f"Suspended tenant {tenant.slug!r}; data kept in schema {tenant.schema_name}."
        )
