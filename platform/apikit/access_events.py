"""Authorization changes, published on commit (issue 18, item 6). In apikit, below every app that
changes access and the real-time app that listens, so neither imports the other.

The services that change what a user may see (``accounts.services`` for role, activation and
password; ``apikit.policy`` for container grants; ``sync.services.device_revoke``) call
``user_access_changed`` in their transaction. After the commit one ``pg_notify`` on
``verdant_realtime_auth`` carries ``"<schema>:<user id>"``; every real-time process LISTENs on it
(``realtime.listener``) and re-checks that user's sockets of THAT tenant at once. The user id
alone would not do: tenants share ids (and emails), and a change in one must not touch another.

A change to a whole tenant (``tenants.services``: suspended, reactivated, dropped) is published
on its own channel, ``verdant_realtime_tenant``, carrying the schema name alone: the channel, not
a marker inside the payload, says "every user of this tenant", so no user id (a UUID, or any
string a later id type allows) can ever be read as the tenant-wide case, and a tenant payload is
never parsed as a user's. Every process then re-checks the tenant of every socket of that schema.

No data travels (the socket re-reads the user and its subscriptions' containers through the
same code as the handshake), so a lost notification only means the periodic sweep
(``REALTIME_RECHECK_SECONDS``) catches the change instead.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import connection, transaction

from apikit.tenancy import current_schema_name

logger = logging.getLogger(__name__)

AUTH_CHANNEL = "verdant_realtime_auth"
TENANT_CHANNEL = "verdant_realtime_tenant"
# A schema name as django-tenants accepts one (its SQL identifier check): never empty, no ':'.
_SCHEMA_NAME = re.compile(r"[_a-zA-Z0-9]{1,63}")


def auth_payload(*, schema: str, user_id: Any) -> str:
    return f"{schema}:{user_id}"


def parse_auth_payload(payload: str) -> tuple[str, str] | None:
    schema, sep, user_id = payload.partition(":")
    return (schema, user_id) if sep and schema and user_id else None


def user_access_changed(*, user_id: Any) -> None:
    """Publish, once the current transaction commits, that ``user_id`` of the current tenant
    may see less (or more): open sockets re-check at once. Never fails the caller's write: the
    notification is sent after the commit (``robust``: an error is logged, the sweep remains)."""
    _notify_on_commit(AUTH_CHANNEL, auth_payload(schema=current_schema_name(), user_id=user_id))


def parse_tenant_payload(payload: str) -> str | None:
    """The schema of a ``verdant_realtime_tenant`` payload; None for anything else."""
    return payload if _SCHEMA_NAME.fullmatch(payload) else None


def tenant_access_changed(*, schema: str) -> None:
    """Publish, once the current transaction commits, that tenant ``schema`` changed as a whole
    (suspended, reactivated, dropped): every real-time process re-checks the tenant of each of
    its sockets of that schema at once. Like ``user_access_changed``, never fails the caller's
    write; ``ValueError`` for a name that is not a schema name (a bug in the caller)."""
    if parse_tenant_payload(schema) is None:
        raise ValueError(f"not a schema name: {schema!r}")
    _notify_on_commit(TENANT_CHANNEL, schema)


def _notify_on_commit(channel: str, payload: str) -> None:
    """``pg_notify`` once the current transaction commits; an error is logged, never raised
    (``robust``): the caller's write stands and the periodic sweep remains."""

    def send() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [channel, payload])

    transaction.on_commit(send, robust=True)
