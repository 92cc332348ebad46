from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.cells.services import CellsError, cell_register


class Command(BaseCommand):
    help = "Add this cell (CELL_NAME, CELL_URL) to the tenant -> cell directory, or update it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--closed", action="store_true", help="accept no new tenants")

    def handle(self, *args: Any, **options: Any) -> None:
        name, url = settings.CELL_NAME, settings.CELL_URL
        if not name or not url:
            raise CommandError("cell_register: set CELL_NAME and CELL_URL")
        try:
            cell = cell_register(name=name, url=url, accepts_tenants=not options["closed"])
        except CellsError as exc:
            raise CommandError(f"cell_register: {exc}") from None
        state = "accepts new tenants" if cell.accepts_tenants else "closed to new tenants"
        self.stdout.write(f"Cell {cell.name!r} at {cell.url} ({state})")
