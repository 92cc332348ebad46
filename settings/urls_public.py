"""URL configuration served on the public host (BASE_DOMAIN): the platform operators' admin."""

from django.urls import path, re_path

from apikit.errors import api_not_found, json_not_found, json_server_error
from tenants.admin import operator_site

urlpatterns = [
    path("admin/", operator_site.urls),
    re_path(r"^api/", api_not_found),  # the JSON envelope, with DEBUG on as well
]

handler404 = json_not_found
handler500 = json_server_error
