"""Query-count helpers: every list endpoint proves it issues the same number of queries for 1 row
and for 50 (README, contributing rules)."""

from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test.utils import CaptureQueriesContext


def count_queries(call: Callable[[], Any]) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        result = call()
    return result, [query["sql"] for query in captured.captured_queries]


def assert_constant_queries(
    *,
    fetch: Callable[[], Any],
    add_rows: Callable[[int], None],
    small: int = 1,
    large: int = 50,
    expected_rows: Callable[[Any], int] | None = None,
) -> int:
    """Fetch with ``small`` rows, add rows up to ``large``, fetch again: the counts must match.

    ``add_rows(n)`` creates n more rows; ``expected_rows(response)`` (optional) returns how many
    rows the response holds, to prove the second fetch really saw ``large`` of them. Returns the
    query count. Warm caches first so the count is the steady state.
    """
    add_rows(small)
    fetch()  # warm per-process caches (routing, content types)
    first, few = count_queries(fetch)
    add_rows(large - small)
    second, many = count_queries(fetch)
    if expected_rows is not None:
        assert expected_rows(first) == small, f"expected {small} rows in the first response"
        assert expected_rows(second) == large, f"expected {large} rows in the second response"
    assert len(few) == len(many), (
        f"{len(few)} queries for {small} row(s) but {len(many)} for {large}:\n" + "\n".join(many)
    )
    return len(many)
