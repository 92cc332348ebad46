"""A per-process cache that every process drops when any one of them publishes a change.

Used for what nearly every request needs and rarely changes: the host -> tenant map
(tenants.routing) and sync devices' state (sync.selectors). Authenticated users no longer come
from here: they are read per request (accounts.authentication, issue 22 item 3). Entries live in this
process's memory, so a warm request reads them without a database or Redis round trip. A change
bumps a generation counter in Redis (``publish_change``); each process compares its generation
at most every ``recheck_seconds`` and drops everything when it moved, so a change reaches every
process within about that long (and this process at once). If Redis cannot be read, entries are
trusted for at most ``FALLBACK_TTL_SECONDS``.

Both tables are bounded least-recently-used: at ``MAX_ENTRIES`` found values the one used longest
ago goes, and remembered misses (hosts that name no tenant) have their own, smaller bound, so a
flood of made-up hosts can neither grow the process nor push a real tenant out.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import redis

logger = logging.getLogger(__name__)

FALLBACK_TTL_SECONDS = 30.0
MAX_ENTRIES = 10_000
MAX_MISSES = 1_000

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V | None
    loaded_at: float


class ProcessCache(Generic[K, V]):
    def __init__(
        self,
        *,
        name: str,
        redis_url: str,
        key_prefix: str,
        recheck_seconds: float,
        cache_misses: bool,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._name = name
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        # One counter per deployment (KEY_PREFIX), so stacks sharing a Redis do not interfere.
        self._generation_key = f"{key_prefix}:{name}-generation"
        self._recheck_seconds = recheck_seconds
        self._cache_misses = cache_misses
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._misses: OrderedDict[K, _Entry[V]] = OrderedDict()
        self._generation: bytes | None = None
        self._generation_checked_at = float("-inf")
        self._redis_healthy = True

    def get(self, key: K, load: Callable[[], V | None]) -> V | None:
        """The cached value for ``key`` (a private copy), loading it on a miss."""
        self._refresh_generation()
        now = self._clock()
        with self._lock:
            table = self._entries if key in self._entries else self._misses
            entry = table.get(key)
            if entry is not None:
                table.move_to_end(key)  # least-recently-used: this one goes last
        if entry is None or (
            not self._redis_healthy and now - entry.loaded_at > FALLBACK_TTL_SECONDS
        ):
            entry = _Entry(value=load(), loaded_at=now)
            if entry.value is not None:
                self._remember(self._entries, key, entry, limit=MAX_ENTRIES)
            elif self._cache_misses:
                self._remember(self._misses, key, entry, limit=MAX_MISSES)
        # Callers annotate what they get (request.tenant, request.user): never share an instance.
        return copy.copy(entry.value) if entry.value is not None else None

    def _remember(
        self, table: OrderedDict[K, _Entry[V]], key: K, entry: _Entry[V], *, limit: int
    ) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._misses.pop(key, None)
            table[key] = entry
            while len(table) > limit:
                table.popitem(last=False)

    def forget_local(self) -> None:
        with self._lock:
            self._entries.clear()
            self._misses.clear()

    def publish_change(self) -> None:
        """Tell every process (this one at once) that cached values changed."""
        self.forget_local()
        try:
            self._redis.incr(self._generation_key)
        except redis.RedisError:
            logger.warning(
                "%s cache: could not publish a change to Redis", self._name, exc_info=True
            )

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
                    "%s cache: Redis unreachable, entries now expire after %ss",
                    self._name,
                    FALLBACK_TTL_SECONDS,
                )
            self._redis_healthy = False
            return
        self._redis_healthy = True
        if generation != self._generation:
            with self._lock:
                self._entries.clear()
                self._misses.clear()
                self._generation = generation
