"""Re-encrypt every tenant's stored SMS secrets under the newest key of NOTIFY_SECRET_KEYS.

    manage.py notify_secrets_rotate

Run it after putting a new key FIRST in NOTIFY_SECRET_KEYS (keeping the old ones after it) and
deploying; remove an old key only once this reports ``unreadable 0``. Idempotent: a second run
rotates nothing. Exits non-zero when a value cannot be opened with any configured key."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django_tenants.utils import tenant_context

from notify.secrets import SecretKeysError, secret_keys_configured
from notify.services import RotationCount, sms_secrets_rotate
from tenants.fanout import schema_walk
from tenants.models import Tenant

UNREADABLE = (
    "{count} stored secret(s) could not be opened with any key in NOTIFY_SECRET_KEYS (in: "
    "{schemas}). Put the key they were encrypted under back at the end of the list and run this "
    "again, or have those organisations enter their auth token again."
)


class Command(BaseCommand):
    help = "Re-encrypt tenants' SMS secrets under the newest NOTIFY_SECRET_KEYS key."

    def handle(self, *args: Any, **options: Any) -> None:
        if not secret_keys_configured():
            raise CommandError("NOTIFY_SECRET_KEYS is not set: nothing can be rotated.")
        total = RotationCount()
        unreadable_in: list[str] = []
        schemas = 0
        # Every schema that exists, suspended tenants and the template included: their stored
        # secrets outlive a key removal just the same.
        for tenant in schema_walk(
            items=list(Tenant.objects.filter(ready=True).order_by("schema_name"))
        ):
            with tenant_context(tenant):
                try:
                    count = sms_secrets_rotate()
                except SecretKeysError as error:
                    raise CommandError(str(error)) from None
            schemas += 1
            total.rotated += count.rotated
            total.current += count.current
            total.unreadable += count.unreadable
            if count.unreadable:
                unreadable_in.append(tenant.schema_name)
        self.stdout.write(
            f"schemas {schemas}, rotated {total.rotated}, already current {total.current}, "
            f"unreadable {total.unreadable}"
        )
        if total.unreadable:
            raise CommandError(
                UNREADABLE.format(count=total.unreadable, schemas=", ".join(unreadable_in))
            )
