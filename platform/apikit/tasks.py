"""Periodic upkeep for the API platform (scheduled by beat, see settings CELERY_BEAT_SCHEDULE)."""

from celery import shared_task
from django_tenants.utils import tenant_context

from apikit.idempotency import idempotency_records_purge
from tenants.fanout import schema_walk
from tenants.selectors import tenant_list_serving


@shared_task(name="apikit.idempotency_records_purge_all", ignore_result=True)
def idempotency_records_purge_all() -> int:
    """Delete idempotency records older than 24 hours in every tenant; returns how many."""
    total = 0
    for tenant in schema_walk(items=list(tenant_list_serving())):
        with tenant_context(tenant):
            total += idempotency_records_purge()
    return total
