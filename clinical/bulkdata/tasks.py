"""Celery tasks of the Bulk Data export: the run (in the tenant's schema) and beat's expiry sweep.
They call services and hold no logic; clinical/tasks.py imports them so the worker registers them."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django_tenants.utils import schema_context

from apikit.tenant_tasks import TenantOnlyTask
from clinical.bulkdata.services import RUN_TASK, bulk_export_run_next, bulk_exports_purge
from tenants.fanout import schema_walk
from tenants.kinds import CLINICAL, kinds_serving
from tenants.selectors import tenant_list_serving

PURGE_TASK = "clinical.bulk_exports_purge"


@shared_task(
    name=RUN_TASK,
    base=TenantOnlyTask,
    ignore_result=True,
    # An export is as long as the tenant is big: its own limits, not the reminder-sized default.
    soft_time_limit=settings.FHIR_BULK_TIME_LIMIT_SECONDS,
    time_limit=settings.FHIR_BULK_TIME_LIMIT_SECONDS + 60,
    # A run that dies is failed by the purge sweep and started again by its client; redelivering
    # a half-written export would only repeat the work.
    acks_late=False,
)
def bulk_export_run() -> str | None:
    """Run the accepted export of the tenant that queued this task."""
    export = bulk_export_run_next()
    return None if export is None else str(export.pk)


@shared_task(name=PURGE_TASK, ignore_result=True)
def bulk_exports_purge_all() -> int:
    """Beat: expired exports (rows and files) of every clinical tenant deleted; dead runs failed."""
    purged = 0
    tenants = tenant_list_serving().filter(kind__in=kinds_serving(CLINICAL))
    for tenant in schema_walk(items=tenants):
        with schema_context(tenant.schema_name):
            purged += bulk_exports_purge()
    return purged
