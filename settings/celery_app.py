"""The Celery application. Tasks run in the schema of the tenant that enqueued them
(tenant-schemas-celery adds the schema to each message's headers)."""

import os
from typing import Any

from celery.signals import (
    task_postrun,
    task_prerun,
    worker_process_init,
    worker_process_shutdown,
)
from tenant_schemas_celery.app import CeleryApp

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings.dev")

app = CeleryApp("verdant")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class TenantRequiredError(RuntimeError):
    """A tenant-only task arrived without a tenant (no ``_schema_name`` header): refused before
    its body runs, so it cannot read or write the public schema by mistake."""


class TenantOnlyTask(app.Task):  # type: ignore[name-defined]
    """Base for tasks that must run in a tenant's schema. tenant-schemas-celery switches to the
    schema named in the message headers before the task runs (task_prerun); a message without
    one runs in public, and this base then raises instead of running the body (fail closed)."""

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from django.db import connection

        schema = getattr(connection, "schema_name", "public")
        if not schema or schema == "public":
            raise TenantRequiredError(f"{self.name} must run in a tenant schema, not in public.")
        return super().__call__(*args, **kwargs)


# --- observability (issue 8) ---------------------------------------------------------------------
# Tracing starts in the process that runs tasks, after the fork: the batch exporter's thread does
# not survive fork(). Both the prefork pool's children and the solo pool send worker_process_init.


@worker_process_init.connect(weak=False)
def _tracing_start(**_: Any) -> None:
    from observability.tracing import configure_tracing

    if configure_tracing(component="worker"):
        # Connected after the Celery instrumentation's own handler, so the task span is current.
        task_prerun.connect(_task_span_tag, weak=False, dispatch_uid="verdant_task_span_tenant")


@worker_process_shutdown.connect(weak=False)
def _tracing_flush(**_: Any) -> None:
    from observability.tracing import shutdown_tracing

    shutdown_tracing()


def _task_span_tag(task: Any = None, **_: Any) -> None:
    from observability.tracing import task_span_tag_tenant

    if task is not None:
        task_span_tag_tenant(task)


@task_prerun.connect(weak=False)
def _task_log_bind(task_id: str = "", task: Any = None, **_: Any) -> None:
    from observability.logs import bind_task
    from observability.tracing import task_tenant

    bind_task(tenant=task_tenant(task) if task is not None else "", task_id=task_id or "")


@task_postrun.connect(weak=False)
def _task_log_unbind(**_: Any) -> None:
    from observability.logs import unbind_task

    unbind_task()
