import contextlib
import time
from collections.abc import Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.lock_capacity import provisioning_warning
from tenants.models import Tenant
from tenants.services import DEFAULT_PLAN, ProvisioningError, tenant_provision


class Command(BaseCommand):
    help = "Create a tenant: schema (cloned from the template), domain <slug>.<BASE_DOMAIN>, admin."
    # cell_provision_tenant is this command inside a cell placement (``placement``).
    refusals: tuple[type[Exception], ...] = (ProvisioningError,)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="lowercase letters, digits and '-', 3-40 characters")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=Tenant.Kind.values)
        parser.add_argument("--admin-email", required=True)
        parser.add_argument("--admin-password", help="default: a generated one, printed once")
        parser.add_argument("--plan", default=DEFAULT_PLAN)
        parser.add_argument(
            "--mrn-system",
            help="the clinic's own FHIR identifier system for MRNs (urn:oid:… or an http(s) URL); "
            "default: https://<BASE_DOMAIN>/fhir/sid/<slug>/mrn. Fixed once provisioned.",
        )

    @contextlib.contextmanager
    def placement(self, *, slug: str) -> Iterator[str | None]:
        """Around the provisioning; yields the cell the tenant goes to (None: no cells)."""
        yield None

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            with self.placement(slug=options["slug"]) as cell:
                result = tenant_provision(
                    slug=options["slug"],
                    name=options["name"],
                    kind=options["kind"],
                    admin_email=options["admin_email"],
                    admin_password=options["admin_password"],
                    plan_name=options["plan"],
                    mrn_system=options["mrn_system"],
                )
        except self.refusals as exc:
            raise CommandError(f"{self._command_name()}: {exc}") from None
        elapsed = time.perf_counter() - started
        password_note = " (generated; shown once)" if result.password_generated else ""
        where = f" in cell {cell!r}" if cell is not None else ""
        self.stdout.write(
            f"Provisioned tenant {result.tenant.slug!r} ({result.tenant.kind}){where} "
            f"in {elapsed:.2f}s\n"
            f"  schema:   {result.tenant.schema_name}\n"
            f"  host:     {result.domain}\n"
            f"  admin:    {result.admin_email}\n"
            f"  password: {result.admin_password}{password_note}"
        )
        # After the tenant is made (it never fails a provisioning): a restart fixes it.
        warning = provisioning_warning()
        if warning:
            self.stderr.write(self.style.WARNING(warning))

    def _command_name(self) -> str:
        return self.__module__.rpartition(".")[2]
