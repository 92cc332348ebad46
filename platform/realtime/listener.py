"""One LISTEN connection per ASGI process: PostgreSQL notifies ``verdant_realtime`` with the
schema name after every statement that adds change-log entries (migration 0001), and the relay
wakes that tenant's feed. The same connection LISTENs on ``verdant_realtime_auth``
(``apikit.access_events``): "<schema>:<user id>" after an authorization change commits, and that
user's sockets of that tenant re-check at once. And on ``verdant_realtime_tenant``: "<schema>"
after a tenant is suspended, reactivated or dropped (``tenants.services``), and every socket of
that tenant re-checks the tenant at once (a suspended one closes 4403, a dropped one 4404).

Its own psycopg 3 async connection (``application_name`` "realtime"), outside Django's connection
handling: it lives as long as the process and never runs a query in a tenant schema. A
notification carries no data (payloads are capped at 8000 bytes and lost while no one listens):
after (re)connecting, every feed is woken, and the relay's safety tick covers the rest.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import psycopg
from django.conf import settings
from psycopg.conninfo import make_conninfo

from apikit.access_events import (
    AUTH_CHANNEL,
    TENANT_CHANNEL,
    parse_auth_payload,
    parse_tenant_payload,
)
from realtime.db import public_call
from realtime.sockets import tenant_recheck, user_recheck
from tenants.routing import get_router

if TYPE_CHECKING:
    from realtime.relay import Relay

logger = logging.getLogger(__name__)

CHANNEL = "verdant_realtime"
APPLICATION_NAME = "realtime"

_task: asyncio.Task[None] | None = None
# Tenant re-checks under way (a task nobody awaits must be referenced until it ends).
_tenant_changes: set[asyncio.Task[int]] = set()


def conninfo() -> str:
    db = settings.DATABASES["default"]
    return make_conninfo(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=str(db["PORT"]) if db.get("PORT") else None,
        application_name=APPLICATION_NAME,
    )


async def listen(relay: Relay, *, ready: asyncio.Event | None = None) -> None:
    backoff = 0.5
    while True:
        try:
            connection = await psycopg.AsyncConnection.connect(conninfo(), autocommit=True)
            async with connection:
                await connection.execute(f"LISTEN {CHANNEL}")
                await connection.execute(f"LISTEN {AUTH_CHANNEL}")
                await connection.execute(f"LISTEN {TENANT_CHANNEL}")
                backoff = 0.5
                relay.wake_all()  # whatever committed while no one listened
                if ready is not None:
                    ready.set()
                async for notification in connection.notifies():
                    dispatch(relay, channel=notification.channel, payload=notification.payload)
        except asyncio.CancelledError:
            raise
        except (psycopg.Error, OSError) as exc:
            logger.warning("realtime LISTEN connection lost (%s); reconnecting", exc)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, 10.0)


def dispatch(relay: Relay, *, channel: str, payload: str) -> None:
    if channel == AUTH_CHANNEL:
        target = parse_auth_payload(payload)
        if target is not None:
            user_recheck(schema=target[0], user_id=target[1])
    elif channel == TENANT_CHANNEL:
        schema = parse_tenant_payload(payload)
        if schema is None:
            logger.warning("realtime: ignored a %s payload that names no schema", TENANT_CHANNEL)
            return
        task = asyncio.get_running_loop().create_task(tenant_changed(schema=schema))
        _tenant_changes.add(task)
        task.add_done_callback(_tenant_changes.discard)
    else:
        relay.wake(payload)


def _forget_routing() -> None:
    get_router().forget_local()


async def tenant_changed(*, schema: str) -> int:
    """Re-check every socket of ``schema`` against the tenant as committed; how many."""
    # The sockets read the tenant through this process's routing cache, which learns of the
    # change only at its next generation check (TENANT_ROUTING_RECHECK_SECONDS). Forgotten on
    # the database thread, behind any routing read already queued there: a read that saw the
    # tenant before the commit cannot land in the cache after this, and every socket's re-check,
    # queued behind it, reads the committed row.
    await public_call(_forget_routing)
    return tenant_recheck(schema=schema)


def start_listener(relay: Relay) -> None:
    global _task
    if _task is None or _task.done():
        _task = asyncio.get_running_loop().create_task(listen(relay))
