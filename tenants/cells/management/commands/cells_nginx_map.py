from typing import Any

from django.core.management.base import BaseCommand

from tenants.cells.selectors import active_host_cells


class Command(BaseCommand):
    help = (
        "Print the tenant -> cell directory as an nginx map body ('<host> <cell URL>;' per line) "
        "for the edge proxy's include file (docs/cells-edge.nginx.conf). Hosts missing from a "
        "stale map still work: the cell that gets them answers 421 and the edge retries."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        for host, url in active_host_cells():
            self.stdout.write(f"{host} {url};")
