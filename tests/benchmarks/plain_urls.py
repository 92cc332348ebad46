"""The same DRF view as /api/v1/auth/me/ (a dict rendered by DRF's JSONRenderer), with nothing
of Verdant in front of it."""

from typing import Any

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

BODY = {
    "id": "01900000-0000-7000-8000-000000000001",
    "email": "admin@bench.example",
    "full_name": "Bench admin",
    "role": "tenant_admin",
    "tenant": {"slug": "bench", "name": "Bench", "kind": "mixed"},
}


class MeView(APIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(BODY)


urlpatterns = [path("api/<str:version>/auth/me/", MeView.as_view())]
