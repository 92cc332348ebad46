from typing import Any

from django.core.management.base import BaseCommand

from tenants.services import template_schema_ensure


class Command(BaseCommand):
    help = "Create the template schema new tenants are cloned from, or bring it to the latest migration."

    def handle(self, *args: Any, **options: Any) -> None:
        template = template_schema_ensure(verbosity=options["verbosity"])
        self.stdout.write(f"Template schema {template.schema_name} is at the latest migration.")
