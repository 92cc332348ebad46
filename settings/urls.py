"""URL configuration served on tenant hosts (<slug>.<BASE_DOMAIN>)."""

from django.contrib import admin
from django.urls import include, path, re_path

from apikit.errors import api_not_found, json_not_found, json_server_error

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/<str:version>/", include("settings.urls_api")),
    # Last: any other path under /api/ answers the JSON envelope, with DEBUG on as well.
    re_path(r"^api/", api_not_found),
]

handler404 = json_not_found
handler500 = json_server_error
