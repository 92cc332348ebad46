"""URL configuration served on the public host (BASE_DOMAIN): the platform operators' admin."""

from django.urls import path

from apikit.errors import json_not_found, json_server_error
from tenants.admin import operator_site

urlpatterns = [
    path("admin/", operator_site.urls),
]

handler404 = json_not_found
handler500 = json_server_error
