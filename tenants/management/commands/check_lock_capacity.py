from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tenants.lock_capacity import lock_capacity

DEFAULT_MIN_HEADROOM = 100


class Command(BaseCommand):
    help = (
        "Check max_locks_per_transaction >= 1.2 x tables / (max_connections + "
        "max_prepared_transactions), the room whole-database pg_dump and pg_upgrade need. "
        "Prints a WARNING line when it is broken or holds for fewer than --min-headroom more "
        "tenants; exits 0 either way (a restart fixes it, not a failed deploy)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--min-headroom",
            type=int,
            default=DEFAULT_MIN_HEADROOM,
            help=f"warn when fewer tenants than this still fit (default {DEFAULT_MIN_HEADROOM})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        capacity = lock_capacity()
        self.stdout.write(f"Lock capacity: {capacity.summary()}")
        warning = capacity.warning(min_headroom=options["min_headroom"])
        if warning:
            self.stderr.write(self.style.WARNING(warning))
