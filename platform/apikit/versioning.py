"""URL path versioning (/api/v1/...) and the lifecycle of old versions.

``API_VERSION_LIFECYCLE = {"v0": {"deprecated": "2026-06-30", "sunset": "2027-01-01",
"link": "https://…/migrate-to-v1"}}`` marks a version deprecated: its responses carry
``Deprecation`` (RFC 9745) and ``Sunset`` (RFC 8594) headers and a ``Link`` to the migration
guide; after the sunset date it answers 410 ``version_retired``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from email.utils import format_datetime
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from rest_framework.versioning import URLPathVersioning

from apikit.errors import error_response


class PathVersioning(URLPathVersioning):
    """``request.version`` from the ``<version>`` URL segment; unknown versions answer 404."""

    invalid_version_message = "Unknown API version in the URL; use /api/v1/."


def _midnight(day: str) -> datetime:
    return datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)


class VersionLifecycleMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        lifecycle = getattr(request, "_api_version_lifecycle", None)
        if lifecycle is not None:
            deprecated = _midnight(lifecycle["deprecated"])
            sunset = _midnight(lifecycle["sunset"])
            response["Deprecation"] = f"@{int(deprecated.timestamp())}"
            response["Sunset"] = format_datetime(sunset, usegmt=True)
            if lifecycle.get("link"):
                response["Link"] = f'<{lifecycle["link"]}>; rel="deprecation"'
        return response

    def process_view(
        self, request: HttpRequest, view_func: Any, view_args: Any, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        version = view_kwargs.get("version")
        lifecycle = settings.API_VERSION_LIFECYCLE.get(version) if version else None
        if lifecycle is None:
            return None
        request._api_version_lifecycle = lifecycle  # type: ignore[attr-defined]
        if timezone.now() >= _midnight(lifecycle["sunset"]):
            return error_response(
                status=410,
                code="version_retired",
                detail=f"API {version} was retired on {lifecycle['sunset']}; use /api/v1/.",
            )
        return None
