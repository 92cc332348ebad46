"""Process-local named counters: the one place application code records operational counts.

Code calls ``increment("throttle_redis_failures")`` and never talks to a metrics backend
directly, so when OpenTelemetry metrics are wired up this module becomes the single exporter
(an observable counter per name reading ``snapshot()``) and no call site changes.

Counters are per process: under gunicorn every worker keeps its own, and the exporter (or
whoever scrapes) sums them. They only go up; a restart starts them at zero again, which is what
monotonic-counter backends expect.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_counters: dict[str, int] = {}


def increment(name: str, amount: int = 1) -> None:
    """Add ``amount`` (>= 0: counters are monotonic) to the counter ``name``."""
    if amount < 0:
        raise ValueError(f"counter {name!r} can only go up; got amount={amount}")
    # ``dict[k] += n`` is a read-modify-write; the lock keeps concurrent threads from losing counts.
    with _lock:
        _counters[name] = _counters.get(name, 0) + amount


def value(name: str) -> int:
    """The current value of ``name``; 0 for a counter never incremented."""
    with _lock:
        return _counters.get(name, 0)


def snapshot() -> dict[str, int]:
    """A consistent copy of every counter, for exporters and debugging endpoints."""
    with _lock:
        return dict(_counters)
