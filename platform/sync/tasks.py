"""Periodic upkeep for sync (scheduled by beat, see settings CELERY_BEAT_SCHEDULE)."""

from celery import shared_task
from django_tenants.utils import tenant_context

from sync.services import change_log_compact
from tenants.fanout import schema_walk
from tenants.selectors import tenant_list_serving


@shared_task(name="sync.change_log_compact_all", ignore_result=True)
def change_log_compact_all() -> int:
    """Compact every serving tenant's change log; returns how many entries were removed."""
    removed = 0
    for tenant in schema_walk(items=list(tenant_list_serving())):
        with tenant_context(tenant):
            result = change_log_compact()
            removed += result.collapsed + result.expired
    return removed
