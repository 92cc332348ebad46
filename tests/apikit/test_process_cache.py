"""apikit.process_cache: bounded least-recently-used tables — a found value used recently stays
when the table is full, and a flood of misses (made-up hosts) has its own bound, so it never
pushes a real tenant out."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from django.conf import settings

from apikit import process_cache
from apikit.process_cache import ProcessCache


class Loader:
    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.loads: list[str] = []

    def __call__(self, key: str) -> Callable[[], str | None]:
        def load() -> str | None:
            self.loads.append(key)
            return f"value-{key}" if key in self.known else None

        return load


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> ProcessCache[str, str]:
    monkeypatch.setattr(process_cache, "MAX_ENTRIES", 3)
    monkeypatch.setattr(process_cache, "MAX_MISSES", 2)
    return ProcessCache(
        name="test",
        redis_url=settings.REDIS_URL,
        key_prefix=f"test-{uuid.uuid4().hex[:8]}",
        recheck_seconds=3600,
        cache_misses=True,
    )


def test_a_full_table_drops_the_value_used_longest_ago(cache: ProcessCache[str, str]) -> None:
    loader = Loader({"a", "b", "c", "d"})
    for key in ("a", "b", "c"):
        assert cache.get(key, loader(key)) == f"value-{key}"
    cache.get("a", loader("a"))  # used again: now the most recent
    cache.get("d", loader("d"))  # the table is full: "b" goes, not everything
    loader.loads.clear()
    for key in ("a", "c", "d"):
        cache.get(key, loader(key))
    assert loader.loads == []
    cache.get("b", loader("b"))
    assert loader.loads == ["b"]


def test_a_flood_of_misses_never_evicts_a_found_value(cache: ProcessCache[str, str]) -> None:
    loader = Loader({"tenant"})
    assert cache.get("tenant", loader("tenant")) == "value-tenant"
    for n in range(50):
        assert cache.get(f"made-up-{n}", loader(f"made-up-{n}")) is None
    loader.loads.clear()
    assert cache.get("tenant", loader("tenant")) == "value-tenant"
    assert cache.get("made-up-49", loader("made-up-49")) is None  # a recent miss is remembered
    assert loader.loads == []
    cache.get("made-up-0", loader("made-up-0"))  # an old one is not
    assert loader.loads == ["made-up-0"]


def test_a_miss_that_becomes_a_value_is_found(cache: ProcessCache[str, str]) -> None:
    loader = Loader(set())
    assert cache.get("new", loader("new")) is None
    loader.known.add("new")
    cache.publish_change()  # provisioning publishes
    assert cache.get("new", loader("new")) == "value-new"


def test_a_full_misses_table_drops_the_miss_used_longest_ago(
    cache: ProcessCache[str, str],
) -> None:
    loader = Loader(set())
    for key in ("x", "y"):
        assert cache.get(key, loader(key)) is None
    cache.get("x", loader("x"))  # asked again: now the most recent miss
    cache.get("z", loader("z"))  # the misses table (2) is full: "y" goes, not "x"
    loader.loads.clear()
    for key in ("x", "z"):
        cache.get(key, loader(key))
    assert loader.loads == []
    cache.get("y", loader("y"))
    assert loader.loads == ["y"]
