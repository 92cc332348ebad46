"""Logging a dependency's outage without flooding the logs: every failure is counted (a metrics
counter), the first of an outage is logged, then at most one warning per interval saying how
many failures came since the last one, and the recovery once. Used where Verdant fails open on
Redis: the REST throttles (``apikit.throttling``) and the real-time connection leases
(``realtime.leases``). Thread-safe; cheap on the healthy path (no lock)."""

from __future__ import annotations

import logging
import threading
import time

from observability import metrics

INTERVAL_SECONDS = 30.0


class OutageLog:
    def __init__(
        self,
        *,
        logger: logging.Logger,
        counter: str,
        failing: str,
        recovered: str,
        interval_seconds: float = INTERVAL_SECONDS,
    ) -> None:
        """``failing``: what the warning says is happening (e.g. "throttling: Redis unreachable,
        serving requests unthrottled"); ``recovered``: the line logged when it works again."""
        self._logger = logger
        self._counter = counter
        self._failing = failing
        self._recovered = recovered
        self._interval = interval_seconds
        self._lock = threading.Lock()
        self._last_warning_at: float | None = None
        self._unreported = 0

    def failed(self, *, error: Exception, doing: str = "") -> None:
        metrics.increment(self._counter)
        now = time.monotonic()
        with self._lock:
            self._unreported += 1
            last = self._last_warning_at
            if last is not None and now - last < self._interval:
                return
            count, self._unreported, self._last_warning_at = self._unreported, 0, now
        self._logger.warning(
            "%s%s (%d failure(s) since the last warning): %s: %s",
            self._failing,
            f" ({doing})" if doing else "",
            count,
            type(error).__name__,
            error,
        )

    def succeeded(self) -> None:
        if self._last_warning_at is None:  # the common case: no lock on the hot path
            return
        with self._lock:
            recovered = self._last_warning_at is not None  # another thread may have got here first
            self._last_warning_at, self._unreported = None, 0
        if recovered:
            self._logger.info("%s", self._recovered)
