"""Celery tasks that run in one tenant's schema: the base class that refuses to run anywhere else,
and the one way to queue such a task.

tenant-schemas-celery switches the worker's connection to the schema named in a message's
``_schema_name`` header before the task runs (and puts the enqueuing connection's schema there
when the header is missing). Tasks are queued by their registered name, so a service can queue
the task that calls it without importing the tasks module (no import cycle).
"""

from typing import Any

from celery import current_app
from tenant_schemas_celery.task import TenantTask

from apikit.tenancy import tenant_schema_required

TENANT_HEADER = "_schema_name"


class TenantOnlyTask(TenantTask):
    """Base for tasks that must run in a tenant's schema. A message without a tenant header runs
    in public, and this base then raises ``TenantRequiredError`` instead of running the body."""

    abstract = True

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        tenant_schema_required(what=f"Task {self.name}")
        return super().__call__(*args, **kwargs)


def tenant_task_send(*, name: str, schema_name: str, queue: str | None = None) -> None:
    """Queue the task registered as ``name`` to run in ``schema_name``. ``queue`` overrides the
    route in CELERY_TASK_ROUTES (read here, at call time, so a run can use a queue of its own)."""
    options: dict[str, Any] = {"headers": {TENANT_HEADER: schema_name}}
    if queue:
        options["queue"] = queue
    current_app.send_task(name, **options)
