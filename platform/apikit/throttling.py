"""Per-tenant request throttles, shared by every web worker through Redis.

Every request on a tenant host is charged to a few *buckets* (DESIGN.md section 5):

* an authenticated user: ``user-burst`` (Plan.user_burst_per_minute per minute),
  ``user-sustained`` (Plan.user_sustained_per_day per day) and the ``tenant`` ceiling (Plan.requests_per_minute per minute), shared by the tenant's
  signed-in users;
* an anonymous caller: ``anon`` per client IP (ANON_REQUESTS_PER_MINUTE per minute) and
  ``anon-tenant``, every anonymous caller of the tenant together (ANON_TENANT_SHARE_PERCENT of
  the plan's ceiling per minute). Anonymous traffic never draws on the ``tenant`` ceiling: calls
  from many addresses, each under its own limit, cannot starve the tenant's signed-in staff;
* a view naming the user another way (``throttle_user_id(data)``: the token refresh, whose
  refresh token's signature and tenant verify) is charged as that user, not as anonymous;
* the login view (``throttle_scope = "login"``) also: the login buckets of apikit.login_guard
  (attempts per client IP + email, failure delay per email; a trusted device's own instead).

Every key carries the deployment's cache prefix and the tenant's schema
(``<prefix>:throttle:<schema>:<bucket>:<ident>``): the same user id or IP in two tenants never
shares a bucket, and one tenant exhausting its ceiling never slows another.

Not throttled: the public host (``request.tenant is None``: platform operators) and superusers.
Tenant staff, tenant_admin included, are throttled like everyone else.

Why GCRA (the generic cell rate algorithm) and not fixed windows or a sliding log:

* fixed windows let a client spend a full window's allowance just before the boundary and
  another just after (twice the limit in a moment), and their Retry-After is only "the end of the
  window";
* a sliding log is exact but stores one entry per request: 50,000 entries per user per day;
* GCRA keeps one integer per bucket (the "theoretical arrival time"), allows a burst of exactly
  ``limit`` and then one request per ``period / limit``, and knows precisely when the next
  request will be allowed, so Retry-After is exact.

Why one Lua script (``throttle.lua``): it reads every bucket, and charges them only if all of
them allow, atomically and in a single round trip (EVALSHA; redis-py falls back to loading the
script when Redis does not know it yet). A refused request therefore costs nothing, so a user
hammering past their burst limit does not also eat the tenant's ceiling. The script takes the
time from Redis, so workers on hosts with skewed clocks still agree.

Plan numbers are read from ``request.tenant.plan`` on every request (routing loads it with the
tenant, at no extra query), so a plan change applies as soon as the routing cache is refreshed:
no restart. What a caller already used carries over as a share of the window (a bucket stores
time, not a count): half the minute used under the old plan is half the minute under the new.

If Redis cannot be reached the request is served (throttling is a protection, not a gate), the
failure is counted in ``observability.metrics`` and a warning is logged (once per outage, then
at most every FAILURE_LOG_INTERVAL_SECONDS, so an outage cannot flood the logs).
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import redis
from django.conf import settings
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from apikit.outage_log import OutageLog
from apikit.request_context import client_ip

if TYPE_CHECKING:
    # rest_framework.views imports this module while it is being defined (APIView's
    # throttle_classes reads DEFAULT_THROTTLE_CLASSES), so a runtime import would be circular.
    from rest_framework.request import Request
    from rest_framework.views import APIView

logger = logging.getLogger(__name__)

LOGIN_SCOPE = "login"
REDIS_FAILURE_COUNTER = "throttle_redis_failures"
# A throttle check must never be what makes a request slow: give up on Redis quickly.
REDIS_TIMEOUT_SECONDS = 0.25
FAILURE_LOG_INTERVAL_SECONDS = 30.0

MINUTE = 60
DAY = 86_400
LOGIN_PERIOD_SECONDS = 15 * MINUTE
_MICROSECONDS = 1_000_000


class PlanLimits(Protocol):
    """What throttling reads from tenants.models.Plan."""

    @property
    def requests_per_minute(self) -> int: ...
    @property
    def user_burst_per_minute(self) -> int: ...
    @property
    def user_sustained_per_day(self) -> int: ...


@dataclass(frozen=True)
class Bucket:
    """``limit`` requests per ``period_seconds``, counted under ``key``."""

    key: str
    limit: int
    period_seconds: int


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    wait_seconds: float


class TenantRateThrottle(BaseThrottle):
    """The only DRF throttle class: every scope of a request, checked in one Redis call."""

    def __init__(self) -> None:
        self._wait: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        tenant = getattr(request, "tenant", None)
        if tenant is None or bool(getattr(request.user, "is_superuser", False)):
            return True

        is_login = getattr(view, "throttle_scope", None) == LOGIN_SCOPE
        identify = getattr(view, "throttle_user_id", None)
        data: object = None
        unreadable_body: exceptions.APIException | None = None
        if is_login or identify is not None:
            try:
                data = request.data
            except (exceptions.ParseError, exceptions.UnsupportedMediaType) as exc:
                # A malformed attempt is still an attempt: charge it (as email "" for a login).
                unreadable_body = exc

        user = request.user
        user_id = str(user.pk) if user.is_authenticated else None
        if user_id is None and identify is not None and unreadable_body is None:
            user_id = identify(data)
        schema = str(tenant.schema_name)
        buckets = request_buckets(
            key_prefix=key_prefix(),
            schema=schema,
            plan=tenant.plan,
            user_id=user_id,
            ip=client_ip(request),
        )
        delay_keys: list[str] = []
        if is_login:
            # Imported here: login_guard builds on this module.
            from apikit.login_guard import login_attempt, login_device_token

            attempt = login_attempt(
                schema=schema,
                ip=client_ip(request),
                email=login_email(data=data),
                device_token=login_device_token(data=data),
            )
            buckets.append(attempt.attempts)
            delay_keys.append(attempt.failures_key)
        verdict = buckets_check_or_allow(buckets=buckets, delay_keys=delay_keys)
        if not verdict.allowed:
            self._wait = verdict.wait_seconds
            return False
        if unreadable_body is not None:
            # DRF has already swapped the unparsable body for an empty one; re-raising keeps the
            # answer the contract's 400 parse_error / 415 instead of a misleading validation error.
            raise unreadable_body
        return True

    def wait(self) -> float | None:
        """Seconds until every refusing bucket allows again (the handler ceils it)."""
        return self._wait


def key_prefix() -> str:
    """The deployment's cache prefix, which every throttle key starts with."""
    return str(settings.CACHES["default"]["KEY_PREFIX"])


def anon_tenant_limit(*, plan: PlanLimits) -> int:
    """Anonymous requests per minute for the whole tenant: ANON_TENANT_SHARE_PERCENT of the
    plan's ceiling (at least 1), always below the ceiling itself."""
    share = plan.requests_per_minute * int(settings.ANON_TENANT_SHARE_PERCENT) // 100
    return max(1, min(share, plan.requests_per_minute - 1))


def request_buckets(
    *,
    key_prefix: str,
    schema: str,
    plan: PlanLimits,
    user_id: str | None,
    ip: str,
) -> list[Bucket]:
    """The buckets one request is charged to (see the module docstring); the login buckets are
    apikit.login_guard's."""
    base = f"{key_prefix}:throttle:{schema}"
    if user_id is not None:
        return [
            Bucket(
                key=f"{base}:user-burst:{user_id}",
                limit=plan.user_burst_per_minute,
                period_seconds=MINUTE,
            ),
            Bucket(
                key=f"{base}:user-sustained:{user_id}",
                limit=plan.user_sustained_per_day,
                period_seconds=DAY,
            ),
            Bucket(key=f"{base}:tenant", limit=plan.requests_per_minute, period_seconds=MINUTE),
        ]
    return [
        Bucket(
            key=f"{base}:anon:{ip}",
            limit=settings.ANON_REQUESTS_PER_MINUTE,
            period_seconds=MINUTE,
        ),
        Bucket(
            key=f"{base}:anon-tenant",
            limit=anon_tenant_limit(plan=plan),
            period_seconds=MINUTE,
        ),
    ]


def login_email(*, data: object) -> str:
    """The normalised email a login body names (as accounts.services matches it), else ""."""
    if not isinstance(data, Mapping):
        return ""
    email = data.get("email")
    return email.strip().lower() if isinstance(email, str) else ""


def email_digest(*, email: str) -> str:
    """Hashed, so the key stays short whatever the body holds and Redis never lists addresses."""
    return hashlib.sha256(email.encode("utf-8")).hexdigest()[:32]


def buckets_check(*, buckets: Sequence[Bucket], delay_keys: Sequence[str] = ()) -> Verdict:
    """Charge every bucket if all of them and every failure record in ``delay_keys`` allow, else
    none; one Redis round trip. Raises RedisError."""
    args: list[int] = [len(buckets)]
    for bucket in buckets:
        args += [bucket.limit, bucket.period_seconds * _MICROSECONDS]
    keys = [bucket.key for bucket in buckets] + list(delay_keys)
    allowed, wait_us = redis_script(name=THROTTLE_SCRIPT)(keys=keys, args=args)
    return Verdict(allowed=bool(allowed), wait_seconds=int(wait_us) / _MICROSECONDS)


def buckets_check_or_allow(*, buckets: Sequence[Bucket], delay_keys: Sequence[str] = ()) -> Verdict:
    """``buckets_check``, failing open: Redis being down must not take the API down with it."""
    try:
        verdict = buckets_check(buckets=buckets, delay_keys=delay_keys)
    except redis.RedisError as error:
        redis_failed(error=error)
        return Verdict(allowed=True, wait_seconds=0.0)
    _redis_health.succeeded()
    return verdict


def redis_failed(*, error: redis.RedisError) -> None:
    """Count (and log, rate-limited) a throttle call that could not reach Redis."""
    _redis_health.failed(error=error)


# --- Redis connection ------------------------------------------------------------------------------


THROTTLE_SCRIPT = "throttle.lua"
LOGIN_FAILURE_SCRIPT = "login_failure.lua"
_SCRIPT_SOURCES = {
    name: Path(__file__).with_name(name).read_text(encoding="utf-8")
    for name in (THROTTLE_SCRIPT, LOGIN_FAILURE_SCRIPT)
}


@dataclass(frozen=True)
class _ScriptHandle:
    url: str
    client: redis.Redis
    scripts: dict[str, Script]


_handle: _ScriptHandle | None = None
_handle_lock = threading.Lock()


def _connect(*, url: str) -> redis.Redis:
    """No retries: EVALSHA charges buckets, so repeating it after a timeout could charge twice,
    and waiting for Redis is exactly what a fail-open throttle must not do."""
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


def redis_script(*, name: str) -> Script:
    """A registered script (``THROTTLE_SCRIPT``, ``LOGIN_FAILURE_SCRIPT``) on the throttles'
    client."""
    return _script_handle().scripts[name]


def redis_client() -> redis.Redis:
    """The throttles' per-process client (fail-fast timeouts, no retries), created on first use
    (so after gunicorn forks) and recreated when ``settings.REDIS_URL`` changes (tests point it
    elsewhere)."""
    return _script_handle().client


def _script_handle() -> _ScriptHandle:
    global _handle
    url = str(settings.REDIS_URL)
    handle = _handle
    if handle is None or handle.url != url:
        with _handle_lock:
            handle = _handle
            if handle is None or handle.url != url:
                client = _connect(url=url)
                handle = _ScriptHandle(
                    url=url,
                    client=client,
                    scripts={
                        script: client.register_script(source)
                        for script, source in _SCRIPT_SOURCES.items()
                    },
                )
                _handle = handle
    return handle


_redis_health = OutageLog(
    logger=logger,
    counter=REDIS_FAILURE_COUNTER,
    failing="throttling: Redis unreachable, serving requests unthrottled",
    recovered="throttling: Redis reachable again, throttles apply",
    interval_seconds=FAILURE_LOG_INTERVAL_SECONDS,
)
