"""The tenant URLconf plus the toy endpoints, for tests/apikit only."""

from django.urls import include, path
from rest_framework.routers import SimpleRouter

from settings.urls import handler404, handler500
from settings.urls import urlpatterns as tenant_urlpatterns
from tests.apikit.toy import views

router = SimpleRouter()
router.register("toy/items", views.ItemViewSet, basename="toy-item")
router.register("toy/counted-items", views.CountedItemViewSet, basename="toy-counted-item")

attachments = views.ItemAttachmentViewSet
urlpatterns = [
    path(
        "api/<str:version>/toy/items/<str:item_pk>/attachments/",
        attachments.as_view({"get": "list", "post": "upload"}),
    ),
    path(
        "api/<str:version>/toy/items/<str:item_pk>/attachments/<str:pk>/download/",
        attachments.as_view({"get": "download"}),
    ),
    path("api/<str:version>/", include(router.urls)),
    path("api/<str:version>/toy/explode/", views.ExplodingView.as_view()),
    path("api/<str:version>/toy/db-down/", views.DatabaseDownView.as_view()),
    path("api/<str:version>/toy/integrity/", views.IntegrityView.as_view()),
    path("api/<str:version>/toy/model-validation/", views.ModelValidationView.as_view()),
    *tenant_urlpatterns,
]

__all__ = ["handler404", "handler500", "urlpatterns"]
