"""URL configuration served on tenant hosts (<slug>.<BASE_DOMAIN>)."""

from django.contrib import admin
from django.urls import include, path

from apikit.errors import json_not_found, json_server_error

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/<str:version>/", include("settings.urls_api")),
]

handler404 = json_not_found
handler500 = json_server_error
