from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.services import ProvisioningError, tenant_drop


class Command(BaseCommand):
    help = "Delete a tenant and ALL its data (schema dropped). Requires --confirm."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--confirm", action="store_true", help="required: this cannot be undone"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not options["confirm"]:
            raise CommandError(
                f"drop_tenant: this deletes every row of {options['slug']!r}; re-run with --confirm"
            )
        try:
            tenant_drop(slug=options["slug"])
        except ProvisioningError as exc:
            raise CommandError(f"drop_tenant: {exc}") from None
        self.stdout.write(f"Dropped tenant {options['slug']!r} and its schema.")
