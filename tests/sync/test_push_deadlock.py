"""A push whose write is chosen as a deadlock victim (two devices' inserts colliding on the
appointments' exclusion constraint wait for each other's speculative insertion) is retried in a
fresh savepoint, never answered 503; a deadlock that persists still surfaces."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.db import OperationalError
from django_tenants.utils import tenant_context

from farms.models import Observation
from sync.push import engine
from tests.sync.conftest import SyncWorld
from tests.sync.test_push import observation, push, results


def _deadlocking(times: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    real = engine._write_table
    calls: list[int] = []

    def write(*args: Any, **kwargs: Any) -> None:
        calls.append(1)
        real(*args, **kwargs)  # the statements run, then the "deadlock" cancels them
        if len(calls) <= times:
            raise OperationalError("deadlock detected") from psycopg.errors.DeadlockDetected()

    monkeypatch.setattr(engine, "_write_table", write)
    return calls


def test_a_deadlocked_write_is_retried_and_applied_once(
    sync_alpha: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _deadlocking(1, monkeypatch)
    rows = [observation(text="after a deadlock")]
    response = push(sync_alpha.farms.agent_client(), {"observations": rows})
    assert [r["status"] for r in results(response)] == ["applied"]
    assert len(calls) == 2
    with tenant_context(sync_alpha.world.tenant):  # the first attempt's savepoint was undone
        assert Observation.objects.filter(pk=rows[0]["id"]).count() == 1


def test_a_deadlock_that_persists_is_a_503_and_writes_nothing(
    sync_alpha: SyncWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _deadlocking(engine.DEADLOCK_ATTEMPTS, monkeypatch)
    rows = [observation(text="never")]
    response = push(sync_alpha.farms.agent_client(), {"observations": rows}, status=503)
    assert response.json()["error"]["code"] == "service_unavailable"
    assert len(calls) == engine.DEADLOCK_ATTEMPTS
    with tenant_context(sync_alpha.world.tenant):
        assert not Observation.objects.filter(pk=rows[0]["id"]).exists()
