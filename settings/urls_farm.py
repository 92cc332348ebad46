"""URL configuration served on a farm tenant's host (tenants.middleware sets it per request):
the routes of settings/urls.py without those of the domain a farm tenant does not have."""

from settings.urls import handler404, handler500, tenant_urlpatterns
from tenants.models import Tenant

urlpatterns = tenant_urlpatterns(kind=Tenant.Kind.FARM, urlconf="settings.urls_farm")

__all__ = ["handler404", "handler500", "urlpatterns"]
