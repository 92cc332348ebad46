from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.core.management.commands.migrate import Command as MigrateCommand

from tenants.cells.conf import APP_LABEL, DIRECTORY_ALIAS, directory_alias


class Command(BaseCommand):
    help = (
        "Create or update the tables of the separate cell directory database "
        "(CELLS_DIRECTORY_DATABASE_URL). Run once per deploy, from any one cell."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        if directory_alias() != DIRECTORY_ALIAS:
            raise CommandError(
                "cells_directory_migrate: CELLS_DIRECTORY_DATABASE_URL is not set; without it the "
                "directory lives in this database's public schema (migrate_schemas --shared)"
            )
        # Django's own migrate (django-tenants replaces the `migrate` name with migrate_schemas,
        # which only knows the tenant database); the router allows only the directory app there.
        call_command(
            MigrateCommand(),
            APP_LABEL,
            database=DIRECTORY_ALIAS,
            interactive=False,
            verbosity=options["verbosity"],
        )
