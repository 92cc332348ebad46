"""Answers /healthz and /readyz on any host, before tenant routing (no tenant lookup, no auth)."""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from apikit.errors import error_body
from apikit.tenancy import activate_public
from observability.health import run_readiness_checks


class HealthCheckMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/healthz":
            return JsonResponse({"status": "ok"})
        if request.path == "/readyz":
            activate_public()
            checks = run_readiness_checks()
            failing = [name for name, result in checks.items() if result != "ok"]
            if failing:
                body = error_body(
                    status=503,
                    code="not_ready",
                    detail=f"Not ready: {', '.join(failing)} check failed.",
                )
                body["checks"] = checks
                return JsonResponse(body, status=503)
            return JsonResponse({"status": "ok", "checks": checks})
        return self.get_response(request)
