from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.cells.services import CellsError, placement_activate
from tenants.models import Tenant
from tenants.services import ProvisioningError, tenant_set_status


class Command(BaseCommand):
    help = (
        "Route a tenant that is ready in this cell here: the last step of moving it from another "
        "cell, after restore_tenant here (docs/scaling.md, 'Moving a tenant between cells')."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument(
            "--resume",
            action="store_true",
            help="also reactivate the tenant here first: a backup taken after archive_tenant (as a "
            "move takes it) restores the tenant suspended",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["resume"]:
                tenant_set_status(slug=options["slug"], status=Tenant.Status.ACTIVE)
            placement = placement_activate(slug=options["slug"])
        except (CellsError, ProvisioningError) as exc:
            raise CommandError(f"cell_activate_tenant: {exc}") from None
        hosts = ", ".join(placement.hosts.values_list("host", flat=True))
        self.stdout.write(
            f"Tenant {placement.slug!r} now routes to cell {placement.cell_id!r}: {hosts}"
        )
