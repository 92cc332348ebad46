from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tenants.cells.services import CellsError, placements_adopt


class Command(BaseCommand):
    help = (
        "Place every ready tenant of this cell that the directory does not route yet (turning "
        "cells on for an existing install; finishing an interrupted cell_provision_tenant)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            adopted = placements_adopt()
        except CellsError as exc:
            raise CommandError(f"cells_adopt: {exc}") from None
        self.stdout.write(f"Adopted {len(adopted)} tenant(s): {', '.join(adopted) or '-'}")
