from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.backup import BackupError, tenant_backup


class Command(BaseCommand):
    help = (
        "Back up one tenant: its schema (pg_dump --schema, custom format) and its registry entry, "
        "into one file that restore_tenant reads."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--file", required=True, type=Path, help="backup file to write")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = tenant_backup(slug=options["slug"], path=options["file"])
        except BackupError as exc:
            raise CommandError(f"backup_tenant: {exc}") from None
        self.stdout.write(
            f"Backed up tenant {result.slug!r} (schema {result.schema}) to {result.path} "
            f"({result.size_bytes / 1024:.0f} KiB) in {result.seconds:.2f}s."
        )
