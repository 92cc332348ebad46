"""The cell router: a request for a host that another cell serves answers 421 with that cell.

Placed just before tenants.middleware.TenantRoutingMiddleware. With cells off (no CELL_NAME) it
raises MiddlewareNotUsed, so Django leaves it out of the handler chain: a single-cell install runs
exactly today's middleware. With cells on, a host this cell serves (an active local tenant) costs
one lookup in the routing cache the next middleware reads anyway; only hosts it does not serve,
or serves suspended (the source of a move), consult the directory.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import DisallowedHost, MiddlewareNotUsed
from django.http import HttpRequest, HttpResponse, JsonResponse
from django_tenants.middleware.main import TenantMainMiddleware

from apikit.errors import error_body
from tenants.cells.conf import this_cell
from tenants.cells.lookup import CellLookup
from tenants.cells.selectors import CellAddress
from tenants.routing import get_router

MISDIRECTED_STATUS = 421
MISDIRECTED_CODE = "tenant_in_other_cell"
MISDIRECTED_DETAIL = (
    "This organisation is served by another part of the service. Retry the request at the "
    "address in cell_url with the same Host header."
)
# What a front proxy reads to re-send the request (docs/scaling.md has the nginx example).
CELL_HEADER = "Verdant-Cell"
CELL_URL_HEADER = "Verdant-Cell-URL"


def misdirected_response(address: CellAddress) -> JsonResponse:
    body = error_body(status=MISDIRECTED_STATUS, code=MISDIRECTED_CODE, detail=MISDIRECTED_DETAIL)
    body["error"]["cell"] = address.name
    body["error"]["cell_url"] = address.url
    response = JsonResponse(body, status=MISDIRECTED_STATUS)
    response[CELL_HEADER] = address.name
    response[CELL_URL_HEADER] = address.url
    # The answer depends on the directory, which changes when a tenant moves.
    response["Cache-Control"] = "no-store"
    return response


class CellRoutingMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.cell = this_cell()
        if not self.cell:
            raise MiddlewareNotUsed("cells are off (CELL_NAME is empty)")
        self.get_response = get_response
        self.lookup = CellLookup(ttl_seconds=settings.CELLS_DIRECTORY_CACHE_SECONDS)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        address = self._elsewhere(request)
        if address is not None:
            return misdirected_response(address)
        return self.get_response(request)

    def _elsewhere(self, request: HttpRequest) -> CellAddress | None:
        try:
            # The same host normalisation as the tenant routing that follows.
            hostname = TenantMainMiddleware.hostname_from_request(request).lower().rstrip(".")
        except DisallowedHost:
            return None  # tenant routing answers 404
        if hostname == settings.BASE_DOMAIN:
            return None
        tenant = get_router().resolve(hostname)
        if tenant is not None and not tenant.is_suspended:
            return None
        address = self.lookup.cell_for_host(hostname)
        if address is None or address.name == self.cell:
            return None  # unknown, or ours: tenant routing answers 404 / 403 as without cells
        return address
