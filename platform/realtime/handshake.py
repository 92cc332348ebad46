"""Who is on the socket: the tenant from the Host header and the user from the bearer token
offered as a subprotocol — never from the URL, a cookie or a session.

Everything here is synchronous and runs through ``realtime.db`` (on the database thread).
Refusals carry the application close code the consumer sends after accepting (a refusal before
the accept reaches a browser only as 1006): docs/realtime.md, "Close codes".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from rest_framework import exceptions
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.authentication import DEVICE_CLAIM, TenantJWTAuthentication, token_belongs_here
from tenants.routing import get_router

PROTOCOL = "verdant.v1"
BEARER_PREFIX = "bearer."

CLOSE_EXPIRED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_AUTH_DEADLINE = 4408
CLOSE_RESUME = 4409
# Generic protocol violations (a malformed frame, an unknown message type) use RFC 6455's 1008.
CLOSE_POLICY = 1008


class RefusedError(Exception):
    """The socket is closed with ``code``; ``reason`` is the close frame's text (≤ 123 bytes)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class Identity:
    user: Any
    role: str
    device_id: str | None
    expires_at: float
    token: Any = None


def header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def host_of(scope: dict[str, Any]) -> str:
    """The Host header's name, lower-cased, without port or the root's trailing dot."""
    raw = header(scope, b"host") or ""
    return (urlsplit(f"//{raw}").hostname or "").rstrip(".")


def origin_allowed(scope: dict[str, Any]) -> bool:
    """No Origin (a native client): allowed, the token authenticates. An Origin (a browser) must
    name the socket's own host — a page of another tenant, or of anyone, may not use a token it
    got hold of. Channels' AllowedHostsOriginValidator would accept every tenant's host."""
    origin = header(scope, b"origin")
    if origin is None:
        return True
    hostname = (urlsplit(origin).hostname or "").rstrip(".")
    return bool(hostname) and hostname == host_of(scope)


def offered_token(scope: dict[str, Any]) -> str | None:
    """The bearer token among the offered subprotocols; ``RefusedError`` when subprotocols are
    offered without ``verdant.v1``. None: authenticate with the first message (a client that
    offers no subprotocol at all, such as ``python -m websockets``, does so too)."""
    offered = list(scope.get("subprotocols") or [])
    if not offered:
        return None
    if PROTOCOL not in offered:
        raise RefusedError(CLOSE_POLICY, f"offer the subprotocol {PROTOCOL}")
    tokens = [p[len(BEARER_PREFIX) :] for p in offered if p.startswith(BEARER_PREFIX)]
    if len(tokens) > 1:
        raise RefusedError(CLOSE_POLICY, "offer one bearer token")
    return tokens[0] if tokens else None


def tenant_for_host(*, hostname: str) -> Any:
    """The routable tenant of ``hostname`` through the HTTP routing cache (runs in public)."""
    tenant = get_router().resolve(hostname) if hostname else None
    if tenant is None:
        raise RefusedError(CLOSE_NOT_FOUND, "no tenant at this host")
    if tenant.is_suspended:
        raise RefusedError(CLOSE_FORBIDDEN, "tenant suspended")
    tenant.domain_url = hostname
    return tenant


def identify(*, raw_token: str) -> Identity:
    """The token's user, checked as the REST API checks it: simplejwt's access token (signature,
    expiry), this tenant's ``tid`` (``token_belongs_here``), then ``TenantJWTAuthentication``'s
    own ``get_user`` — the user read from the database, active, credentials version current, a
    named device registered and not revoked. The role is the database's, never the token's
    claim. Runs in the tenant's schema."""
    try:
        token = AccessToken(raw_token)  # type: ignore[arg-type]
    except ExpiredTokenError:
        raise RefusedError(CLOSE_EXPIRED, "token expired") from None
    except TokenError:
        raise RefusedError(CLOSE_FORBIDDEN, "token invalid") from None
    if not token_belongs_here(token):
        raise RefusedError(CLOSE_FORBIDDEN, "token of another organisation")
    try:
        user = TenantJWTAuthentication().get_user(token)
    except exceptions.APIException as exc:  # AuthenticationFailed, APIError (device)
        raise RefusedError(CLOSE_FORBIDDEN, _reason(exc)) from None
    device = token.get(DEVICE_CLAIM)
    return Identity(
        user=user,
        role=str(user.role),
        device_id=str(device) if device is not None else None,
        expires_at=float(token["exp"]),
        token=token,
    )


def identity_recheck(*, identity: Identity) -> Any:
    """The user re-read as at the handshake (active, password unchanged, device not revoked) with
    the same role; ``RefusedError`` 4403 otherwise. Runs in the tenant's schema."""
    try:
        user = TenantJWTAuthentication().get_user(identity.token)
    except exceptions.APIException as exc:
        raise RefusedError(CLOSE_FORBIDDEN, _reason(exc)) from None
    if str(user.role) != identity.role:
        raise RefusedError(CLOSE_FORBIDDEN, "role changed: reconnect")
    return user


def _reason(exc: Exception) -> str:
    code = getattr(exc, "code", None)
    if code is None:
        detail = getattr(exc, "detail", None)
        code = getattr(detail, "code", None)
    return str(code or "forbidden")[:100]
