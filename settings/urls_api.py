"""Every API route, mounted under /api/<version>/ by the tenant URL confs (settings/urls.py).

The routes are listed once, here; ``api_urlpatterns(kind)`` leaves out the domain apps a tenant
kind does not serve (tenants.kinds), so a clinic tenant's ``farms/`` routes and a farm tenant's
``clinical/`` ones fall through to the unknown-route 404 envelope. ``urlpatterns`` (this module as
a URL conf) is every route: the mixed kind's, and what ``make openapi`` documents.
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tenants.kinds import CLINICAL, FARMS, kind_domains
from tenants.models import Tenant

# Domain app label -> its routes.
_DOMAIN_ROUTES: dict[str, Any] = {
    CLINICAL: path("clinical/", include("clinical.api.urls")),
    FARMS: path("farms/", include("farms.api.urls")),
}


def api_urlpatterns(*, kind: str, urlconf: str | None) -> list[Any]:
    """The API routes ``kind`` serves. ``urlconf`` is the URL conf the OpenAPI document is
    generated from (the kind's own, so a tenant host's document lists what that tenant has;
    None: ROOT_URLCONF, the full one)."""
    domains = kind_domains(kind)
    return [
        path("", include("accounts.api.urls")),
        path("", include("audit.api.urls")),
        *(route for domain, route in _DOMAIN_ROUTES.items() if domain in domains),
        path("notify/", include("notify.api.urls")),
        path("sync/", include("sync.api.urls")),
        path("schema/", SpectacularAPIView.as_view(urlconf=urlconf), name="schema"),
        path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    ]


urlpatterns = api_urlpatterns(kind=Tenant.Kind.MIXED, urlconf=None)
