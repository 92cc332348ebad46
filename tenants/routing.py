"""Host -> tenant resolution with a per-process cache (apikit.process_cache).

Every web process keeps the host map in memory, so a warm request costs no query. Changes to
tenants, domains or plans call ``routing_changed`` (from ``transaction.on_commit``), which reaches
every process within ``TENANT_ROUTING_RECHECK_SECONDS``; with Redis down, entries expire after
30 seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.conf import settings

from apikit.process_cache import ProcessCache
from tenants.models import Domain, Tenant


class TenantRouter:
    def __init__(
        self,
        *,
        redis_url: str,
        key_prefix: str,
        recheck_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cache: ProcessCache[str, Tenant] = ProcessCache(
            name="tenant-routing",
            redis_url=redis_url,
            key_prefix=key_prefix,
            recheck_seconds=recheck_seconds,
            cache_misses=True,
            clock=clock,
        )

    def resolve(self, hostname: str) -> Tenant | None:
        """The routable tenant for ``hostname`` (a private copy), or None."""
        return self._cache.get(hostname, lambda: _load_tenant(hostname))

    def forget_local(self) -> None:
        self._cache.forget_local()

    def publish_change(self) -> None:
        """Tell every process (this one at once) that tenants or domains changed."""
        self._cache.publish_change()


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
