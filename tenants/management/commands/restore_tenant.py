from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tenants.backup import BackupError, tenant_restore


class Command(BaseCommand):
    help = (
        "Restore one tenant from a backup_tenant file (same deployment). Recreates a dropped "
        "tenant; --replace overwrites an existing tenant's data (archive_tenant it first)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--file", required=True, type=Path, help="backup file to read")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="overwrite the data of an existing tenant with the backup's",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = tenant_restore(
                slug=options["slug"], path=options["file"], replace=options["replace"]
            )
        except BackupError as exc:
            raise CommandError(f"restore_tenant: {exc}") from None
        action = "Replaced the data of" if result.replaced else "Restored"
        migrated = "; migrated to the latest schema" if result.migrated else ""
        self.stdout.write(
            f"{action} tenant {result.tenant.slug!r} (schema {result.tenant.schema_name}) "
            f"in {result.seconds:.2f}s{migrated}."
        )
        if result.sender_route_problem:
            self.stderr.write(
                "Its own SMS sender no longer receives delivery receipts and STOP messages: "
                f"{result.sender_route_problem} Change the sender in the API "
                "(notify/sender/) or free the number, then save the sender again."
            )
