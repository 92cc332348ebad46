"""A small per-process cache of host -> cell answers, for the cell router (middleware).

Only hosts this cell does not serve reach it, so it holds misses and foreign hosts. The directory
is shared by every cell and a change in it cannot bump each cell's Redis generation
(apikit.process_cache), so entries simply expire: a moved tenant is found at its new cell by every
other cell within ``ttl_seconds``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from tenants.cells.selectors import CellAddress, cell_for_host

MAX_ENTRIES = 10_000


class CellLookup:
    def __init__(
        self,
        *,
        ttl_seconds: float,
        load: Callable[[str], CellAddress | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_seconds = ttl_seconds
        self._load = load or (lambda host: cell_for_host(host=host))
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[CellAddress | None, float]] = {}

    def cell_for_host(self, host: str) -> CellAddress | None:
        now = self._clock()
        entry = self._entries.get(host)
        if entry is not None and now - entry[1] < self._ttl_seconds:
            return entry[0]
        address = self._load(host)
        with self._lock:
            # Unknown hosts are cached too (a flood of random hosts costs one query each per
            # TTL); the bound keeps such a flood from growing memory without limit.
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[host] = (address, now)
        return address

    def forget(self) -> None:
        with self._lock:
            self._entries.clear()
