"""One LISTEN connection per ASGI process: PostgreSQL notifies ``verdant_realtime`` with the
schema name after every statement that adds change-log entries (migration 0001), and the relay
wakes that tenant's feed. The same connection LISTENs on ``verdant_realtime_auth``
(``apikit.access_events``): "<schema>:<user id>" after an authorization change commits, and that
user's sockets of that tenant re-check at once.

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

from apikit.access_events import AUTH_CHANNEL, parse_auth_payload
from realtime.sockets import user_recheck

if TYPE_CHECKING:
    from realtime.relay import Relay

logger = logging.getLogger(__name__)

CHANNEL = "verdant_realtime"
APPLICATION_NAME = "realtime"

_task: asyncio.Task[None] | None = None


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
    else:
        relay.wake(payload)


def start_listener(relay: Relay) -> None:
    global _task
    if _task is None or _task.done():
        _task = asyncio.get_running_loop().create_task(listen(relay))
