"""django-tenants' ``migrate_schemas`` with one more option, ``--continue-on-error``.

Django runs the command of the first installed app that has one (``tenants`` comes before
``django_tenants``), so this subclass of the documented command class replaces it everywhere,
including in the subprocess executor's per-schema children. The option only reaches the executor
(tenants.migration_executor), which reads it from the options django-tenants hands it.
"""

from django.core.management.base import CommandParser
from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand


class Command(MigrateSchemasCommand):
    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--continue-on-error",
            action="store_true",
            dest="continue_on_error",
            default=False,
            help=(
                "Carry on with the other tenant schemas when one fails to migrate; the failed "
                "schemas are listed at the end and the command exits non-zero."
            ),
        )
