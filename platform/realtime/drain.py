"""The drain before shutdown (issue 18, item 8; docs/realtime.md, "Shutdown").

Without it, uvicorn closes every socket at SIGTERM in the same instant (1012), and every client
of the pod reconnects at once: their jitter (0.5-5 s) spreads that over seconds, not over the
pod's whole grace period. The pod's preStop hook (helm/verdant, realtime-deployment.yaml) calls
the probe app's ``POST /drain`` on 127.0.0.1 (``realtime.probes``) and returns when it answers.
From that call on, this process is draining:

- ``/readyz`` answers 503, so the Service sends it no new connection;
- a new socket is accepted and closed with 1001 (``realtime.consumer``): one landing here through
  an ingress that has not yet seen the endpoint go reconnects elsewhere;
- the sockets open at that moment are closed with 1001 "going away", one after another, spread
  evenly over ``REALTIME_DRAIN_SECONDS`` (the i-th of n at ``i * window / n``); each client
  reconnects (with its own jitter) to another pod and resumes from its last event id.

The call answers once the window has passed (at once when nothing was open), so SIGTERM finds no
socket left for uvicorn to close. A second call joins the drain under way.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from django.conf import settings

from realtime.sockets import OpenSocket, every_socket

# RFC 6455 7.4.1: "an endpoint is 'going away', such as a server going down". 1012 (service
# restart) is only in IANA's registry and says the same endpoint will be back; this process will
# not, and a client answers both alike (reconnect with jitter, resume): docs/realtime.md.
CLOSE_GOING_AWAY = 1001
# How long the drain waits for the last close frames to be handed to the server after the window.
CLOSE_GRACE_SECONDS = 5.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DrainResult:
    closed: int
    seconds: float


_drain: asyncio.Task[DrainResult] | None = None


def draining() -> bool:
    """True from the first drain request on: no new socket, /readyz 503."""
    return _drain is not None


def drain_seconds() -> float:
    """The window the open sockets' closes are spread over: ``REALTIME_DRAIN_SECONDS`` (20)."""
    return float(settings.REALTIME_DRAIN_SECONDS)


async def drain() -> DrainResult:
    """Start draining (or join the drain under way) and return once it is done."""
    global _drain
    if _drain is None:
        _drain = asyncio.get_running_loop().create_task(_spread_closes(window=drain_seconds()))
    # Shielded: the hook's connection going away must not stop the closes half-way.
    return await asyncio.shield(_drain)


async def _spread_closes(*, window: float) -> DrainResult:
    loop = asyncio.get_running_loop()
    started = loop.time()
    sockets = every_socket()
    closes: list[asyncio.Task[None]] = []
    for index, socket in enumerate(sockets):
        # Each close at its own slot from the start (never the sum of sleeps: no drift).
        await asyncio.sleep(max(0.0, started + window * index / len(sockets) - loop.time()))
        closes.append(loop.create_task(socket.go_away()))
    # A socket that was mid-handshake when the drain began registered after the snapshot.
    seen = set(sockets)
    late: list[OpenSocket] = [socket for socket in every_socket() if socket not in seen]
    closes.extend(loop.create_task(socket.go_away()) for socket in late)
    if sockets:
        await asyncio.sleep(max(0.0, started + window - loop.time()))
    if closes:
        done, _ = await asyncio.wait(closes, timeout=CLOSE_GRACE_SECONDS)
        for close in done:
            # A client gone before its close frame: nothing to close, nothing to report.
            if not close.cancelled() and close.exception() is not None:
                logger.info("realtime drain: a close failed (%r)", close.exception())
    return DrainResult(closed=len(sockets) + len(late), seconds=window)
