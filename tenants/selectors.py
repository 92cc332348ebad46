"""Reads over the tenant registry."""

from django.db.models import QuerySet

from tenants.models import Tenant


def tenant_list_serving() -> QuerySet[Tenant]:
    """Tenants whose schemas are complete and in service (not the template, not suspended)."""
    return Tenant.objects.filter(
        ready=True, is_template=False, status=Tenant.Status.ACTIVE
    ).order_by("schema_name")
