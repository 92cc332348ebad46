"""Host -> tenant resolution with a per-process cache.

Every web process keeps the host map in memory, so a warm request costs no query. Changes to
tenants or domains bump a generation counter in Redis (``routing_changed``); each process
compares its generation at most every ``TENANT_ROUTING_RECHECK_SECONDS`` and drops its map when
the counter moved, so a suspension reaches every worker within about a second. If Redis cannot be
read, entries are trusted for at most ``FALLBACK_TTL_SECONDS``.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import redis
from django.conf import settings

from tenants.models import Domain, Tenant

logger = logging.getLogger(__name__)

FALLBACK_TTL_SECONDS = 30.0
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class _Entry:
    tenant: Tenant | None
    loaded_at: float


class TenantRouter:
    def __init__(
        self,
        *,
        redis_url: str,
        key_prefix: str,
        recheck_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        # One counter per deployment (KEY_PREFIX), so stacks sharing a Redis do not interfere.
        self._generation_key = f"{key_prefix}:tenant-routing-generation"
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._generation: bytes | None = None
        self._generation_checked_at = float("-inf")
        self._redis_healthy = True

    def resolve(self, hostname: str) -> Tenant | None:
        """The routable tenant for ``hostname`` (a private copy), or None."""
        self._refresh_generation()
        now = self._clock()
        entry = self._entries.get(hostname)
        if entry is None or (
            not self._redis_healthy and now - entry.loaded_at > FALLBACK_TTL_SECONDS
        ):
            entry = _Entry(tenant=_load_tenant(hostname), loaded_at=now)
            with self._lock:
                if len(self._entries) >= MAX_ENTRIES:
                    self._entries.clear()
                self._entries[hostname] = entry
        # Callers annotate request.tenant; never hand out the shared cached instance.
        return copy.copy(entry.tenant) if entry.tenant is not None else None

    def forget_local(self) -> None:
        with self._lock:
            self._entries.clear()

    def publish_change(self) -> None:
        """Tell every process (this one at once) that tenants or domains changed."""
        self.forget_local()
        try:
            self._redis.incr(self._generation_key)
        except redis.RedisError:
            logger.warning("tenant routing: could not publish a change to Redis", exc_info=True)

    def _refresh_generation(self) -> None:
        now = self._clock()
        if now - self._generation_checked_at < self._recheck_seconds:
            return
        self._generation_checked_at = now
        try:
            generation = self._redis.get(self._generation_key)
        except redis.RedisError:
            if self._redis_healthy:
                logger.warning(
                    "tenant routing: Redis unreachable, cache entries now expire after %ss",
                    FALLBACK_TTL_SECONDS,
                )
            self._redis_healthy = False
            return
        self._redis_healthy = True
        if generation != self._generation:
            with self._lock:
                self._entries.clear()
                self._generation = generation


def _load_tenant(hostname: str) -> Tenant | None:
    domain = (
        Domain.objects.select_related("tenant__plan")
        .filter(domain=hostname, tenant__ready=True, tenant__is_template=False)
        .first()
    )
    return domain.tenant if domain is not None else None


_router: TenantRouter | None = None
_router_lock = threading.Lock()


def get_router() -> TenantRouter:
    global _router
    if _router is None:
        with _router_lock:
            if _router is None:
                _router = TenantRouter(
                    redis_url=settings.REDIS_URL,
                    key_prefix=str(settings.CACHES["default"]["KEY_PREFIX"]),
                    recheck_seconds=settings.TENANT_ROUTING_RECHECK_SECONDS,
                )
    return _router


def routing_changed() -> None:
    """Call (from transaction.on_commit) after any change to a tenant or its domains."""
    get_router().publish_change()
