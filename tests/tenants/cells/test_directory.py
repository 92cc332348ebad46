"""The tenant -> cell directory inside one process: the directory is this database's public schema
(no CELLS_DIRECTORY_DATABASE_URL), CELL_NAME is set per test. Provisioning claims the slug
fleet-wide; routing answers 421 with the owning cell; with cells off nothing changes."""

from __future__ import annotations

import pytest
from django.core.exceptions import MiddlewareNotUsed
from django.db import OperationalError, connection
from django.http import HttpResponse
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import schema_exists
from rest_framework.test import APIClient

from tenants.cells.lookup import CellLookup
from tenants.cells.middleware import CellRoutingMiddleware
from tenants.cells.models import Cell, Placement, PlacementHost
from tenants.cells.routers import DirectoryRouter
from tenants.cells.selectors import CellAddress, cell_for_host
from tenants.cells.services import (
    CellsError,
    cell_register,
    placement_activate,
    placement_for_new_tenant,
    placements_adopt,
)
from tenants.models import Tenant
from tenants.services import ProvisioningError, tenant_provision
from tests.conftest import TenantWorld, login

CELL_A = "cell-a"
CELL_B = "cell-b"
URL_A = "http://cell-a.internal.example"
URL_B = "http://cell-b.internal.example:8443"


@pytest.fixture
def cells(db: None) -> None:
    cell_register(name=CELL_A, url=URL_A)
    cell_register(name=CELL_B, url=URL_B)


def _place(slug: str, cell: str, *hosts: str) -> Placement:
    placement = Placement.objects.create(slug=slug, cell_id=cell, state=Placement.State.ACTIVE)
    for host in hosts:
        PlacementHost.objects.create(host=host, placement=placement)
    return placement


def _provision(slug: str) -> Tenant:
    return tenant_provision(
        slug=slug, name=f"{slug} org", kind="mixed", admin_email="admin@example.com"
    ).tenant


# --- cells off: today's behaviour, nothing added to the request path --------------------------


def test_cells_off_leaves_the_middleware_out_of_the_chain() -> None:
    with pytest.raises(MiddlewareNotUsed):
        CellRoutingMiddleware(lambda request: HttpResponse())


def test_a_served_host_costs_no_directory_query(alpha: TenantWorld, cells: None) -> None:
    """The same statements for a warm request with cells off and on: a host this cell serves never
    reaches the directory."""
    statements = {}
    for cell in ("", CELL_A):
        with override_settings(CELL_NAME=cell):
            client = login(alpha)
            client.get("/api/v1/users/")  # warm: routing cache, token, throttles
            with CaptureQueriesContext(connection) as queries:
                assert client.get("/api/v1/users/").status_code == 200
        statements[cell] = [query["sql"] for query in queries.captured_queries]
    assert len(statements[CELL_A]) == len(statements[""])
    assert not any("cells_" in sql for sql in statements[CELL_A])


# --- routing ---------------------------------------------------------------------------------


@override_settings(CELL_NAME=CELL_A)
def test_a_host_served_by_another_cell_answers_421_with_that_cell(
    alpha: TenantWorld, cells: None
) -> None:
    _place("gamma", CELL_B, "gamma.verdant.test")
    response = alpha.client().get("/api/v1/auth/me/", HTTP_HOST="GAMMA.verdant.test.")
    assert response.status_code == 421
    assert response.json() == {
        "error": {
            "status": 421,
            "code": "tenant_in_other_cell",
            "detail": (
                "This organisation is served by another part of the service. Retry the request "
                "at the address in cell_url with the same Host header."
            ),
            "cell": CELL_B,
            "cell_url": URL_B,
        }
    }
    assert response["Verdant-Cell"] == CELL_B
    assert response["Verdant-Cell-URL"] == URL_B
    assert response["Cache-Control"] == "no-store"


@override_settings(CELL_NAME=CELL_A)
def test_unknown_and_claimed_hosts_still_answer_404(cells: None) -> None:
    placement = _place("delta", CELL_B, "delta.verdant.test")
    Placement.objects.filter(pk=placement.pk).update(state=Placement.State.CLAIMED)
    for host in ("nobody.verdant.test", "delta.verdant.test", "evil.example.com"):
        response = APIClient(HTTP_HOST=host).get("/api/v1/auth/me/")
        assert response.status_code == 404, host
        assert response.json()["error"]["code"] == "tenant_not_found"


@override_settings(CELL_NAME=CELL_A)
def test_an_active_local_tenant_is_served_here_whatever_the_directory_says(
    alpha: TenantWorld, beta: TenantWorld, cells: None
) -> None:
    _place("alpha", CELL_B, alpha.host)
    me = login(alpha).get("/api/v1/auth/me/")
    assert me.status_code == 200
    assert me.json()["email"] == "admin@example.com"


@override_settings(CELL_NAME=CELL_A)
def test_a_suspended_local_tenant_moved_elsewhere_answers_421_not_403(
    alpha: TenantWorld, beta: TenantWorld, cells: None
) -> None:
    """The source cell of a move keeps the tenant suspended until it is dropped: its host points
    at the target cell. Beta, with the same user ids and emails, is untouched."""
    Tenant.objects.filter(slug="alpha").update(status=Tenant.Status.SUSPENDED)
    response = alpha.client().get("/api/v1/auth/me/")
    assert response.status_code == 403  # not moved yet: suspended here
    _place("alpha", CELL_B, alpha.host)
    # A new client is a new handler: its own middleware and directory lookup cache.
    response = alpha.client().get("/api/v1/auth/me/")
    assert response.status_code == 421
    assert response.json()["error"]["cell"] == CELL_B
    assert login(beta).get("/api/v1/auth/me/").status_code == 200


@override_settings(CELL_NAME=CELL_A)
def test_a_host_placed_in_this_cell_but_suspended_answers_403(
    alpha: TenantWorld, cells: None
) -> None:
    _place("alpha", CELL_A, alpha.host)
    Tenant.objects.filter(slug="alpha").update(status=Tenant.Status.SUSPENDED)
    response = alpha.client().get("/api/v1/auth/me/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "tenant_suspended"


@override_settings(CELL_NAME=CELL_A)
def test_directory_outage_answers_503_for_foreign_hosts_and_nothing_changes_for_local_ones(
    alpha: TenantWorld, cells: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(*, host: str) -> CellAddress | None:
        raise OperationalError("connection to the directory database refused")

    monkeypatch.setattr("tenants.cells.lookup.cell_for_host", unreachable)
    response = APIClient(HTTP_HOST="gamma.verdant.test", raise_request_exception=False).get(
        "/api/v1/auth/me/"
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response["Retry-After"] == "1"
    # A host this cell serves never reads the directory.
    assert login(alpha).get("/api/v1/auth/me/").status_code == 200


def test_lookup_caches_answers_and_misses_for_its_ttl() -> None:
    now = [0.0]
    loads: list[str] = []
    answers = {"gamma.verdant.test": CellAddress(name=CELL_B, url=URL_B)}

    def load(host: str) -> CellAddress | None:
        loads.append(host)
        return answers.get(host)

    lookup = CellLookup(ttl_seconds=10, load=load, clock=lambda: now[0])
    assert lookup.cell_for_host("gamma.verdant.test") == answers["gamma.verdant.test"]
    assert lookup.cell_for_host("nobody.verdant.test") is None
    assert lookup.cell_for_host("gamma.verdant.test") is not None
    assert lookup.cell_for_host("nobody.verdant.test") is None
    assert loads == ["gamma.verdant.test", "nobody.verdant.test"]
    now[0] = 10.0
    answers.pop("gamma.verdant.test")  # the tenant moved away
    assert lookup.cell_for_host("gamma.verdant.test") is None
    assert loads[-1] == "gamma.verdant.test"


def test_selector_reads_only_active_placements(cells: None) -> None:
    _place("gamma", CELL_B, "gamma.verdant.test", "clinic.gamma.example")
    assert cell_for_host(host="clinic.gamma.example") == CellAddress(name=CELL_B, url=URL_B)
    Placement.objects.filter(slug="gamma").update(state=Placement.State.CLAIMED)
    assert cell_for_host(host="gamma.verdant.test") is None


# --- provisioning into a chosen cell -----------------------------------------------------------


@override_settings(CELL_NAME=CELL_A)
def test_provisioning_claims_then_routes_the_tenant_to_this_cell(cells: None) -> None:
    with placement_for_new_tenant(slug="gamma") as placement:
        assert placement.state == Placement.State.CLAIMED
        assert cell_for_host(host="gamma.verdant.test") is None  # not routable while claimed
        _provision("gamma")
    placement.refresh_from_db()
    assert (placement.cell_id, placement.state) == (CELL_A, Placement.State.ACTIVE)
    assert cell_for_host(host="gamma.verdant.test") == CellAddress(name=CELL_A, url=URL_A)


@override_settings(CELL_NAME=CELL_A)
def test_a_slug_another_cell_holds_is_refused_and_nothing_is_created(cells: None) -> None:
    _place("gamma", CELL_B, "gamma.verdant.test")
    with (
        pytest.raises(CellsError, match="already lives in cell 'cell-b'"),
        placement_for_new_tenant(slug="gamma"),
    ):
        _provision("gamma")
    assert not Tenant.objects.filter(slug="gamma").exists()
    assert not schema_exists("t_gamma")
    assert Placement.objects.get(slug="gamma").cell_id == CELL_B


@override_settings(CELL_NAME=CELL_A)
def test_failed_provisioning_releases_the_claim(cells: None) -> None:
    with (
        pytest.raises(ProvisioningError, match="invalid admin email"),
        placement_for_new_tenant(slug="gamma"),
    ):
        tenant_provision(slug="gamma", name="G", kind="farm", admin_email="nope")
    assert not Placement.objects.filter(slug="gamma").exists()
    # The slug is free again, for this cell or another.
    with placement_for_new_tenant(slug="gamma"):
        _provision("gamma")
    assert Placement.objects.get(slug="gamma").state == Placement.State.ACTIVE


@override_settings(CELL_NAME=CELL_A)
def test_a_stale_claim_of_this_cell_is_taken_over(cells: None) -> None:
    Placement.objects.create(slug="gamma", cell_id=CELL_A)  # this cell died mid-provisioning
    with placement_for_new_tenant(slug="gamma"):
        _provision("gamma")
    assert Placement.objects.get(slug="gamma").state == Placement.State.ACTIVE


@pytest.mark.parametrize(
    ("cell_name", "closed", "message"),
    [
        ("", False, "cells are off"),
        ("cell-z", False, "'cell-z' is not in the directory"),
        (CELL_A, True, "accepts no new tenants"),
    ],
    ids=["cells-off", "unregistered", "closed"],
)
def test_provisioning_refused_without_a_usable_cell(
    cells: None, cell_name: str, closed: bool, message: str
) -> None:
    if closed:
        Cell.objects.filter(name=CELL_A).update(accepts_tenants=False)
    with (
        override_settings(CELL_NAME=cell_name),
        pytest.raises(CellsError, match=message),
        placement_for_new_tenant(slug="gamma"),
    ):
        _provision("gamma")
    assert not Tenant.objects.filter(slug="gamma").exists()


@override_settings(CELL_NAME=CELL_A)
def test_activation_never_takes_a_host_from_another_tenant(alpha: TenantWorld, cells: None) -> None:
    _place("other", CELL_B, alpha.host)
    with pytest.raises(CellsError, match="already reaches tenant 'other'"):
        placement_activate(slug="alpha")
    assert cell_for_host(host=alpha.host) == CellAddress(name=CELL_B, url=URL_B)


@override_settings(CELL_NAME=CELL_A)
def test_activation_moves_a_tenant_and_its_hosts_to_this_cell(
    alpha: TenantWorld, cells: None
) -> None:
    """The last step of a move, run in the target cell once the restore is done."""
    _place("alpha", CELL_B, alpha.host, "stale.verdant.test")
    placement_activate(slug="alpha")
    assert cell_for_host(host=alpha.host) == CellAddress(name=CELL_A, url=URL_A)
    assert cell_for_host(host="stale.verdant.test") is None
    with pytest.raises(CellsError, match="no ready tenant 'nobody'"):
        placement_activate(slug="nobody")


@override_settings(CELL_NAME=CELL_A)
def test_adopt_places_local_tenants_but_never_one_another_cell_holds(
    alpha: TenantWorld, beta: TenantWorld, cells: None
) -> None:
    _place("beta", CELL_B, beta.host)
    assert placements_adopt() == ["alpha"]
    assert placements_adopt() == []
    assert cell_for_host(host=alpha.host) == CellAddress(name=CELL_A, url=URL_A)
    assert cell_for_host(host=beta.host) == CellAddress(name=CELL_B, url=URL_B)


def test_cell_urls_are_checked(db: None) -> None:
    with pytest.raises(CellsError, match="invalid cell URL"):
        cell_register(name=CELL_A, url="cell-a:8000")


def test_router_keeps_the_directory_database_to_the_directory() -> None:
    router = DirectoryRouter()
    assert router.allow_migrate("cells_directory", "cells") is True
    assert router.allow_migrate("cells_directory", "tenants") is False
    assert router.allow_migrate("default", "cells") is False
    assert router.allow_migrate("default", "tenants") is None
    assert router.db_for_read(Cell) == "cells_directory"
    assert router.db_for_write(Tenant) is None
