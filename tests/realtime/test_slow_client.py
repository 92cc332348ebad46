"""A client that reads too slowly (issue 18, item 4): its bounded outbound queue overflows and
the socket is closed with 4409 (resume), instead of the process buffering without end."""

from __future__ import annotations

import asyncio
from typing import Any

from realtime.consumer import RealtimeConsumer


def test_an_overflowing_outbound_queue_closes_with_4409() -> None:
    closed: list[tuple[int, str]] = []

    async def scenario() -> None:
        consumer = RealtimeConsumer()
        consumer.closing = False
        consumer.outbound = asyncio.Queue(maxsize=3)

        async def record(code: int, reason: str) -> None:
            closed.append((code, reason))
            consumer.closing = True

        consumer._close = record  # type: ignore[method-assign]
        messages: list[dict[str, Any]] = [{"type": "event", "n": n} for n in range(10)]
        for message in messages:
            consumer.deliver(message)
        await asyncio.sleep(0)
        # Frames after the close are dropped, not queued.
        assert consumer.outbound.qsize() == 3

    asyncio.run(scenario())
    assert closed == [(4409, "too slow: resume")]
