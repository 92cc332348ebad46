"""Who is asking, from where: the facts audit events, throttles and logs record about a request."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from observability.tracing import current_trace_id

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,128}$")


def client_ip(request: HttpRequest) -> str:
    """The client's address. Behind ``TRUSTED_PROXY_COUNT`` proxies (the ingress), the address
    that many hops from the right of X-Forwarded-For; otherwise the socket peer. Client-supplied
    X-Forwarded-For entries to the left are never trusted."""
    proxies = int(getattr(settings, "TRUSTED_PROXY_COUNT", 0))
    if proxies > 0:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return str(request.META.get("REMOTE_ADDR", ""))


def request_id_for(request: HttpRequest) -> str:
    """The caller's X-Request-ID when it is well-formed, else a fresh one."""
    supplied = request.headers.get(REQUEST_ID_HEADER, "")
    return supplied if _SAFE_REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex


@dataclass(frozen=True)
class RequestContext:
    actor_id: str | None
    actor_email: str
    ip: str
    user_agent: str
    request_id: str
    trace_id: str


def request_context(request: HttpRequest) -> RequestContext:
    user = getattr(request, "user", None)
    authenticated = bool(user is not None and user.is_authenticated)
    return RequestContext(
        actor_id=str(user.pk) if authenticated and user is not None else None,
        actor_email=str(getattr(user, "email", "")) if authenticated else "",
        ip=client_ip(request),
        user_agent=request.headers.get("User-Agent", "")[:400],
        request_id=getattr(request, "request_id", "") or request_id_for(request),
        trace_id=getattr(request, "trace_id", "") or current_trace_id(),
    )
