"""The HTTP side of the ASGI process: /healthz and /readyz for the kubelet, through apikit's
probe logic (``apikit.health.readiness_response``: the same checks as the web pods), and
``POST /drain`` for the pod's preStop hook (``realtime.drain``); anything else is 404 in the error
envelope (the REST API is served by gunicorn, not here).

/drain answers only a request from this machine's loopback (the hook runs in the pod): to any
other client it is the same 404 as an unknown path. The pod's port is reachable from the ingress
controller and, without a NetworkPolicy, from any pod of the cluster; a drain from there would
disconnect every client of the pod. A request carrying a forwarding header is refused too, so a
proxy trusted with ``--forwarded-allow-ips`` cannot make a remote caller look local."""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from apikit.errors import error_body
from apikit.health import readiness_response
from apikit.json import dumps
from realtime.db import public_call
from realtime.drain import drain, draining

Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def _readiness() -> tuple[int, bytes]:
    response = readiness_response()
    return response.status_code, response.content


DRAIN_PATH = "/drain"
FORWARDING_HEADERS = frozenset({b"forwarded", b"x-forwarded-for", b"x-real-ip"})


def _not_found() -> tuple[int, bytes]:
    return 404, dumps(
        error_body(
            status=404,
            code="not_found",
            detail="Only /healthz, /readyz and /ws/v1/ are served here.",
        )
    )


def from_loopback(scope: dict[str, Any]) -> bool:
    """The request comes from this machine (127.0.0.0/8, ::1) and through no proxy."""
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:  # a Unix socket's path, or no address at all
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if not address.is_loopback:
        return False
    return not any(name.lower() in FORWARDING_HEADERS for name, _ in scope.get("headers", []))


async def _drain(scope: dict[str, Any]) -> tuple[int, bytes]:
    if not from_loopback(scope):
        return _not_found()
    if scope.get("method") != "POST":
        return 405, dumps(
            error_body(status=405, code="method_not_allowed", detail="POST /drain starts a drain.")
        )
    result = await drain()
    return 200, dumps({"status": "drained", "closed": result.closed, "seconds": result.seconds})


async def probe_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    path = scope.get("path", "")
    if path == "/healthz":
        status, body = 200, dumps({"status": "ok"})
    elif path == "/readyz" and draining():
        # Out of the Service's endpoints while the sockets drain (no check needed to know).
        status = 503
        body = dumps(
            error_body(status=503, code="draining", detail="Draining for shutdown: not ready.")
        )
    elif path == "/readyz":
        status, body = await public_call(_readiness)
    elif path == DRAIN_PATH:
        status, body = await _drain(scope)
    else:
        status, body = _not_found()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 405:
        headers.append((b"allow", b"POST"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
