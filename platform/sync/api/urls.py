from django.urls import path
from rest_framework.routers import SimpleRouter

from sync.api import views
from sync.api.push_views import PushView

router = SimpleRouter()
router.register("devices", views.DeviceViewSet, basename="sync-device")

urlpatterns = [
    path("pull/", views.PullView.as_view(), name="sync-pull"),
    path("push/", PushView.as_view(), name="sync-push"),
    *router.urls,
]
