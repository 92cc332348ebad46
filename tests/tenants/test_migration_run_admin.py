"""A migration run's progress (tenants.migration_progress) in the log and, read-only, in the
operators' admin on the public host — and nowhere on a tenant's (issue 20, item 4)."""

import logging
from typing import Any

import pytest
from django.contrib import admin
from django.test import Client

from tenants.migration_progress import MigrationProgress
from tenants.models import MigrationFailure, MigrationRun
from tests.conftest import TenantWorld
from tests.tenants.operators import operator_client


@pytest.fixture
def operator(db: None) -> Client:
    return operator_client(email="ops@verdant.example", password="ops-Password-77")


def _run(*, caplog: pytest.LogCaptureFixture) -> MigrationProgress:
    with caplog.at_level(logging.INFO, logger="tenants.migrations"):
        progress = MigrationProgress.start(
            executor="subprocess",
            parallel=2,
            continue_on_error=True,
            tenant_schemas=5,
            to_migrate=3,
        )
        progress.schema_done(schema="t_alpha", seconds=0.7)
        progress.schema_failed(schema="t_beta", seconds=0.2, error="migrate exited with status 1")
    return progress


def test_the_run_row_and_the_log_follow_each_schema(
    db: None, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.MIGRATION_PROGRESS_SUMMARY_SECONDS = 0
    progress = _run(caplog=caplog)
    run = MigrationRun.objects.get(pk=progress.run_id)
    assert (run.status, run.tenant_schemas, run.already_current) == ("running", 5, 2)
    assert (run.to_migrate, run.done, run.failed, run.left) == (3, 1, 1, 1)
    messages = [record.getMessage() for record in caplog.records]
    assert any("t_alpha migrated in 0.7 s (1 done, 0 failed, 2 left)" in m for m in messages)
    assert any("t_beta FAILED after 0.2 s: migrate exited with status 1" in m for m in messages)
    assert any("progress: 1 of 3 done, 1 failed, 1 left" in m for m in messages)

    with caplog.at_level(logging.INFO, logger="tenants.migrations"):
        progress.schema_done(schema="t_gamma", seconds=0.5)
        progress.finish()
    run.refresh_from_db()
    assert (run.status, run.done, run.failed, run.left) == ("failed", 2, 1, 0)
    assert run.finished_at is not None
    assert list(run.failures.values_list("schema_name", flat=True)) == ["t_beta"]
    assert "1 tenant schema(s) failed: t_beta" in caplog.text


def test_a_run_still_running_when_the_next_starts_was_interrupted(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    first = _run(caplog=caplog)
    second = _run(caplog=caplog)
    assert MigrationRun.objects.get(pk=first.run_id).status == "interrupted"
    assert MigrationRun.objects.get(pk=second.run_id).status == "running"
    assert "marked interrupted" in caplog.text


def test_operators_see_runs_and_failed_schemas_read_only(
    operator: Client, caplog: pytest.LogCaptureFixture
) -> None:
    progress = _run(caplog=caplog)
    listing = operator.get("/admin/tenants/migrationrun/")
    assert listing.status_code == 200
    assert b"running" in listing.content
    page = operator.get(f"/admin/tenants/migrationrun/{progress.run_id}/change/")
    assert page.status_code == 200
    assert b"t_beta" in page.content
    assert b"migrate exited with status 1" in page.content
    assert b'name="_save"' not in page.content  # a view page, nothing to submit

    assert operator.get("/admin/tenants/migrationrun/add/").status_code == 403
    edit = operator.post(
        f"/admin/tenants/migrationrun/{progress.run_id}/change/", {"status": "succeeded"}
    )
    assert edit.status_code == 403
    delete = operator.post(
        f"/admin/tenants/migrationrun/{progress.run_id}/delete/", {"post": "yes"}
    )
    assert delete.status_code == 403
    assert MigrationRun.objects.get(pk=progress.run_id).status == "running"
    assert MigrationFailure.objects.filter(run_id=progress.run_id).count() == 1


def test_tenant_hosts_never_show_migration_runs(alpha: TenantWorld) -> None:
    # Platform-wide operational state: registered on the operators' site only.
    assert not admin.site.is_registered(MigrationRun)
    assert not admin.site.is_registered(MigrationFailure)
    assert Client(HTTP_HOST=alpha.host).get("/admin/tenants/migrationrun/").status_code in {
        302,
        404,
    }
