"""The tenant URLconf plus the test-only endpoints, for the tracing tests' server."""

from django.urls import path

from settings.urls import handler404, handler500
from settings.urls import urlpatterns as tenant_urlpatterns
from tests.observability import views

urlpatterns = [
    path("api/<str:version>/test/enqueue-purge/", views.EnqueuePurgeView.as_view()),
    path("api/<str:version>/test/explode/", views.ExplodeView.as_view()),
    *tenant_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
