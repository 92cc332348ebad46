"""The Celery application. Tasks run in the schema of the tenant that enqueued them
(tenant-schemas-celery adds the schema to each message's headers; apikit.tenant_tasks holds the
base for tenant-only tasks and the helper that queues them)."""

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
