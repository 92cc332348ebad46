import contextlib
from collections.abc import Iterator

from tenants.cells.services import CellsError, placement_for_new_tenant
from tenants.management.commands.provision_tenant import Command as ProvisionTenantCommand
from tenants.services import ProvisioningError


class Command(ProvisionTenantCommand):
    help = (
        "provision_tenant in this cell: claims the slug in the tenant -> cell directory first "
        "(refused if another cell holds it), provisions here, then routes the tenant's hosts here. "
        "Same arguments as provision_tenant."
    )
    refusals = (CellsError, ProvisioningError)

    @contextlib.contextmanager
    def placement(self, *, slug: str) -> Iterator[str | None]:
        with placement_for_new_tenant(slug=slug) as placement:
            yield placement.cell_id
