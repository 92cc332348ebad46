"""Committed work for tests that need it: the code under test runs on its own connection in
another thread, so its writes commit and its ``on_commit`` callbacks (the real enqueue path)
fire — for suites that talk to a real worker, gunicorn or pg_dump in another process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def committed(work: Callable[[], Any], *, timeout: float = 300) -> Any:
    """``work()``'s value, committed; its exception re-raised here."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            # Never let a mis-set-up session touch a developer's database.
            assert connection.settings_dict["NAME"].startswith("test_")
            outcome["value"] = work()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=timeout)
    assert not thread.is_alive(), f"committed work did not finish in {timeout:.0f} s"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
