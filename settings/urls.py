"""URL configuration served on tenant hosts (<slug>.<BASE_DOMAIN>).

This module is the mixed kind's, the full one (ROOT_URLCONF, what ``make openapi`` documents);
settings/urls_clinic.py and settings/urls_farm.py are built by the same ``tenant_urlpatterns``
for the other kinds, and the routing middleware (tenants.middleware) picks one per request.
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path, re_path

from accounts.admin_site import kind_site
from apikit.errors import api_not_found, json_not_found, json_server_error
from settings.urls_api import api_urlpatterns
from tenants.kinds import CLINICAL, kind_domains
from tenants.models import Tenant


def tenant_urlpatterns(*, kind: str, urlconf: str | None) -> list[Any]:
    """A tenant host's routes for ``kind``: its admin site, its API routes (``urlconf``: the
    module serving them, for the OpenAPI document; None for ROOT_URLCONF)."""
    # The FHIR R4 base (clinical/fhir_api), where the kind has the clinical domain.
    fhir = (
        [path("fhir/R4/", include("clinical.fhir_api.urls"))]
        if CLINICAL in kind_domains(kind)
        else []
    )
    return [
        path("admin/", kind_site(kind).urls),
        path("api/<str:version>/", include(api_urlpatterns(kind=kind, urlconf=urlconf))),
        # Last: any other path under /api/ answers the JSON envelope, with DEBUG on as well.
        re_path(r"^api/", api_not_found),
        *fhir,
    ]


urlpatterns = tenant_urlpatterns(kind=Tenant.Kind.MIXED, urlconf=None)

handler404 = json_not_found
handler500 = json_server_error
