"""Every API route, mounted under /api/<version>/ by settings/urls.py."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("", include("accounts.api.urls")),
    path("", include("audit.api.urls")),
    path("clinical/", include("clinical.api.urls")),
    path("farms/", include("farms.api.urls")),
    path("notify/", include("notify.api.urls")),
    path("sync/", include("sync.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
