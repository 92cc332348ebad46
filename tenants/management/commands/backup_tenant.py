from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.backup import METHODS, BackupError, tenant_backup


class Command(BaseCommand):
    help = (
        "Back up one tenant: its schema and its registry entry, into one file that restore_tenant "
        "reads. By COPY of its rows plus the template's DDL when the schema matches the template "
        "(cost independent of the number of tenants), else pg_dump --schema."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--file", required=True, type=Path, help="backup file to write")
        parser.add_argument(
            "--method",
            choices=METHODS,
            default="auto",
            help="copy (fails if the schema differs from the template), pg_dump, or auto "
            "(default: copy when possible, else pg_dump)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = tenant_backup(
                slug=options["slug"], path=options["file"], method=options["method"]
            )
        except BackupError as exc:
            raise CommandError(f"backup_tenant: {exc}") from None
        self.stdout.write(
            f"Backed up tenant {result.slug!r} (schema {result.schema}) to {result.path} "
            f"({result.size_bytes / 1024:.0f} KiB, {result.method}) in {result.seconds:.2f}s."
        )
        if result.method_reason:
            self.stderr.write(
                f"Backed up with pg_dump, whose cost grows with the number of tenants: "
                f"{result.method_reason}. Run `manage.py check_schema_drift`."
            )
