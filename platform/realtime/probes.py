"""The HTTP side of the ASGI process: /healthz and /readyz for the kubelet, through apikit's
probe logic (``apikit.health.readiness_response``: the same checks as the web pods); anything
else is 404 in the error envelope (the REST API is served by gunicorn, not here)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from apikit.errors import error_body
from apikit.health import readiness_response
from apikit.json import dumps
from realtime.db import public_call

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def _readiness() -> tuple[int, bytes]:
    response = readiness_response()
    return response.status_code, response.content


async def probe_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    path = scope.get("path", "")
    if path == "/healthz":
        status, body = 200, dumps({"status": "ok"})
    elif path == "/readyz":
        status, body = await public_call(_readiness)
    else:
        status = 404
        body = dumps(
            error_body(
                status=404,
                code="not_found",
                detail="Only /healthz, /readyz and /ws/v1/ are served here.",
            )
        )
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
