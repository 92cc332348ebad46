"""Routes each request to its tenant's schema by host name (first middleware after health)."""

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest, HttpResponse
from django_tenants.middleware.main import TenantMainMiddleware

from apikit.errors import error_response
from apikit.tenancy import activate_public, activate_tenant
from tenants.models import Tenant
from tenants.routing import get_router

TENANT_NOT_FOUND_DETAIL = "No tenant is served at this host name. Check the URL."
TENANT_SUSPENDED_DETAIL = "This organisation's account is suspended. Contact your administrator."

# The URL conf each kind is served (issue 19, item 6): built from one route list without the
# domain the kind does not have (settings/urls.py). The mixed kind has everything: ROOT_URLCONF.
KIND_URLCONFS: dict[str, str] = {
    Tenant.Kind.CLINIC: "settings.urls_clinic",
    Tenant.Kind.FARM: "settings.urls_farm",
}


class TenantRoutingMiddleware(TenantMainMiddleware):
    """django-tenants' host routing with a cached lookup, JSON errors and suspension.

    ``BASE_DOMAIN`` itself serves the public schema (platform operators); ``<slug>.BASE_DOMAIN``
    serves that tenant; anything else answers 404 and never falls back to public data. A tenant
    host's URL conf follows the tenant's kind (``KIND_URLCONFS``).
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        activate_public()
        try:
            # Host names are case-insensitive and may end in the root's dot (RFC 3986 / 1034):
            # "ALPHA.example.com." is alpha's host, as browsers and DNS treat it.
            hostname = self.hostname_from_request(request).lower().rstrip(".")
        except DisallowedHost:
            return error_response(
                status=404, code="tenant_not_found", detail=TENANT_NOT_FOUND_DETAIL
            )

        if hostname == settings.BASE_DOMAIN:
            request.tenant = None  # type: ignore[attr-defined]
            request.urlconf = settings.PUBLIC_SCHEMA_URLCONF
            return None

        tenant = get_router().resolve(hostname)
        if tenant is None:
            return error_response(
                status=404, code="tenant_not_found", detail=TENANT_NOT_FOUND_DETAIL
            )
        if tenant.is_suspended:
            return error_response(
                status=403, code="tenant_suspended", detail=TENANT_SUSPENDED_DETAIL
            )

        tenant.domain_url = hostname
        request.tenant = tenant  # type: ignore[attr-defined]
        urlconf = KIND_URLCONFS.get(tenant.kind)
        if urlconf is not None:
            request.urlconf = urlconf
        activate_tenant(tenant)
        return None
