"""One view returning the same JSON shape as /api/v1/auth/me/, with nothing in front of it."""

from django.http import HttpRequest, JsonResponse
from django.urls import path

BODY = {
    "id": "01900000-0000-7000-8000-000000000001",
    "email": "admin@bench.example",
    "full_name": "Bench admin",
    "role": "tenant_admin",
    "tenant": {"slug": "bench", "name": "Bench", "kind": "mixed"},
}


def me(request: HttpRequest, version: str) -> JsonResponse:
    return JsonResponse(BODY)


urlpatterns = [path("api/<str:version>/auth/me/", me)]
