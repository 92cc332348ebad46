"""/api/v1/farms/...: farms themselves at the root (UUID ids), the other resources beside them."""

from rest_framework.routers import SimpleRouter

from farms.api import views

router = SimpleRouter()
router.register("fields", views.FieldViewSet, basename="farms-field")
router.register("crops", views.CropViewSet, basename="farms-crop")
router.register("plantings", views.PlantingViewSet, basename="farms-planting")
router.register("observations", views.ObservationViewSet, basename="farms-observation")
router.register("harvests", views.HarvestViewSet, basename="farms-harvest")
# Last, with UUID-only ids, so "fields/" etc. are never read as a farm id.
router.register("", views.FarmViewSet, basename="farms-farm")

urlpatterns = router.urls
