"""Placeholder created by part A so the URLs import; part B replaces this module."""

from typing import Any

from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apikit.errors import APIError
from apikit.permissions import TenantMember


class PushView(APIView):
    permission_classes = (IsAuthenticated, TenantMember)

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        raise APIError(status=501, code="not_implemented", detail="Push is not available yet.")
