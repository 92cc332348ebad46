"""Celery tasks of the clinical domain: reminder delivery. Tasks call services, hold no logic;
services queue them by name (clinical.reminders.services.reminders_enqueue_dispatch), so nothing
here is imported by the code it runs."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apikit.tenancy import current_schema_name
from apikit.tenant_tasks import TenantOnlyTask
from clinical.reminders import reminders_dispatch
from clinical.reminders.selectors import schemas_with_due_reminders
from clinical.reminders.services import DISPATCH_TASK, reminders_enqueue_dispatch
from tenants.kinds import CLINICAL, kinds_serving
from tenants.selectors import tenant_list_serving


@shared_task(
    name=DISPATCH_TASK,
    base=TenantOnlyTask,
    acks_late=True,
    reject_on_worker_lost=True,
    # Infrastructure hiccups (database restart) only; provider errors are handled per row.
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=8,
    ignore_result=True,
)
def reminders_dispatch_task() -> dict[str, Any]:
    """Deliver the due reminders of the tenant that enqueued this task."""
    report = reminders_dispatch()
    if report.more:
        reminders_enqueue_dispatch(schema_name=current_schema_name())
    return {k: v for k, v in report.__dict__.items() if v}


@shared_task(name="clinical.reminders_sweep", ignore_result=True)
def reminders_sweep() -> list[str]:
    """Beat: one indexed query per serving tenant with the clinical domain (a farm tenant has no
    reminders) for due or stuck reminders no worker holds; a dispatch run is queued for each
    tenant that has some. This is what recovers messages Redis lost or a killed worker left
    behind."""
    schemas = [
        tenant.schema_name
        for tenant in tenant_list_serving().filter(kind__in=kinds_serving(CLINICAL))
    ]
    due = schemas_with_due_reminders(schemas=schemas)
    for schema in due:
        reminders_enqueue_dispatch(schema_name=schema)
    return due


# The Bulk Data export's tasks (run, purge), registered with the worker through this module.
from clinical.bulkdata import tasks as bulk_export_tasks  # noqa: E402, F401
