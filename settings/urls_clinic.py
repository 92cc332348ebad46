"""URL configuration served on a clinic tenant's host (tenants.middleware sets it per request):
the routes of settings/urls.py without those of the domain a clinic tenant does not have."""

from settings.urls import handler404, handler500, tenant_urlpatterns
from tenants.models import Tenant

urlpatterns = tenant_urlpatterns(kind=Tenant.Kind.CLINIC, urlconf="settings.urls_clinic")

__all__ = ["handler404", "handler500", "urlpatterns"]
