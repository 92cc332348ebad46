import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.cells.services import CellsError, placement_for_new_tenant
from tenants.lock_capacity import provisioning_warning
from tenants.models import Tenant
from tenants.services import DEFAULT_PLAN, ProvisioningError, tenant_provision


class Command(BaseCommand):
    help = (
        "provision_tenant in this cell: claims the slug in the tenant -> cell directory first "
        "(refused if another cell holds it), provisions here, then routes the tenant's hosts here."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="lowercase letters, digits and '-', 3-40 characters")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=Tenant.Kind.values)
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", help="default: a generated one, printed once")
        parser.add_argument("--plan", default=DEFAULT_PLAN)
        parser.add_argument(
            "--mrn-system",
            help="the clinic's own FHIR identifier system for MRNs (as for provision_tenant)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            with placement_for_new_tenant(slug=options["slug"]) as placement:
                result = tenant_provision(
                    slug=options["slug"],
                    name=options["name"],
                    kind=options["kind"],
                    admin_email=options["admin_email"],
                    admin_password=options["admin_password"],
                    plan_name=options["plan"],
                    mrn_system=options["mrn_system"],
                )
        except (CellsError, ProvisioningError) as exc:
            raise CommandError(f"cell_provision_tenant: {exc}") from None
        password_note = " (generated; shown once)" if result.password_generated else ""
        self.stdout.write(
            f"Provisioned tenant {result.tenant.slug!r} in cell {placement.cell_id!r} "
            f"in {time.perf_counter() - started:.2f}s\n"
            f"  host:     {result.domain}\n"
            f"  admin:    {result.admin_email}\n"
            f"  password: {result.admin_password}{password_note}"
        )
        warning = provisioning_warning()
        if warning:
            self.stderr.write(self.style.WARNING(warning))
