"""Directory writes: register a cell, place a tenant in one, move it, adopt existing tenants.

The directory and a cell's own database are two databases, so provisioning cannot be one
transaction. It is a claim instead: the slug is claimed for this cell in the directory first (the
unique slug is the fleet-wide lock), the cell provisions the tenant in its own transaction, and the
placement turns ``active`` after that commits. A failed provisioning releases the claim; a cell
that dies in between leaves a ``claimed`` row that routing ignores and that the same cell may take
over on a retry (or ``cells_adopt`` completes if the tenant did get provisioned).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from django.db import transaction

from tenants.cells.conf import directory_alias, this_cell
from tenants.cells.models import Cell, Placement, PlacementHost
from tenants.models import Domain, Tenant


class CellsError(Exception):
    """A one-line, operator-facing reason why a directory change was refused."""


def _require_cell_name() -> str:
    cell = this_cell()
    if not cell:
        raise CellsError("cells are off: set CELL_NAME (and CELL_URL) for this stack")
    return cell


def cell_register(*, name: str, url: str, accepts_tenants: bool = True) -> Cell:
    """Add a cell to the directory, or update its URL (idempotent: every deploy may run it)."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise CellsError(f"invalid cell URL {url!r}: use http(s)://host[:port]")
    with transaction.atomic(using=directory_alias()):
        cell, _ = Cell.objects.update_or_create(
            name=name, defaults={"url": url.rstrip("/"), "accepts_tenants": accepts_tenants}
        )
    return cell


def _local_tenant(slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug, is_template=False, ready=True).first()


def placement_claim(*, slug: str) -> Placement:
    """Claim ``slug`` for this cell; refused while any other cell holds it."""
    cell_name = _require_cell_name()
    with transaction.atomic(using=directory_alias()):
        cell = Cell.objects.select_for_update().filter(name=cell_name).first()
        if cell is None:
            raise CellsError(f"cell {cell_name!r} is not in the directory; run cell_register")
        if not cell.accepts_tenants:
            raise CellsError(f"cell {cell_name!r} accepts no new tenants; choose another cell")
        placement, created = Placement.objects.select_for_update().get_or_create(
            slug=slug, defaults={"cell": cell}
        )
        if not created and placement.cell_id != cell_name:
            raise CellsError(f"tenant {slug!r} already lives in cell {placement.cell_id!r}")
        if not created and placement.state == Placement.State.ACTIVE:
            raise CellsError(f"tenant {slug!r} already exists in this cell")
    return placement


def placement_release(*, slug: str) -> None:
    """Drop this cell's unfinished claim on ``slug`` (never an active placement)."""
    Placement.objects.filter(
        slug=slug, cell_id=_require_cell_name(), state=Placement.State.CLAIMED
    ).delete()


def placement_activate(*, slug: str) -> Placement:
    """Point the directory at this cell for ``slug`` and every host its Domain rows name.

    Also the last step of a move (run in the target cell after the restore): the placement and
    its hosts switch to this cell in one directory transaction.
    """
    cell_name = _require_cell_name()
    tenant = _local_tenant(slug)
    if tenant is None:
        raise CellsError(f"no ready tenant {slug!r} in cell {cell_name!r}")
    hosts = sorted(Domain.objects.filter(tenant=tenant).values_list("domain", flat=True))
    with transaction.atomic(using=directory_alias()):
        if not Cell.objects.filter(name=cell_name).exists():
            raise CellsError(f"cell {cell_name!r} is not in the directory; run cell_register")
        placement, _ = Placement.objects.select_for_update().update_or_create(
            slug=slug, defaults={"cell_id": cell_name, "state": Placement.State.ACTIVE}
        )
        taken = (
            PlacementHost.objects.filter(host__in=hosts)
            .exclude(placement=placement)
            .values_list("host", "placement__slug")
            .first()
        )
        if taken is not None:
            # A host routes to one tenant fleet-wide; never take one from another tenant.
            raise CellsError(f"host {taken[0]!r} already reaches tenant {taken[1]!r}")
        PlacementHost.objects.filter(placement=placement).exclude(host__in=hosts).delete()
        PlacementHost.objects.bulk_create(
            [PlacementHost(host=host, placement=placement) for host in hosts],
            ignore_conflicts=True,
        )
    return placement


@contextmanager
def placement_for_new_tenant(*, slug: str) -> Iterator[Placement]:
    """Claim ``slug`` around the block that provisions it here; activate on success, release on
    any failure (the block's exception propagates)."""
    placement = placement_claim(slug=slug)
    try:
        yield placement
    except BaseException:
        placement_release(slug=slug)
        raise
    placement_activate(slug=slug)


def placements_adopt() -> list[str]:
    """Place every ready local tenant that the directory does not know yet in this cell (turning
    cells on for an existing install, or finishing a provisioning whose activation was lost).
    Tenants the directory places in another cell are left alone and not returned."""
    cell_name = _require_cell_name()
    adopted = []
    for slug in Tenant.objects.filter(is_template=False, ready=True).values_list("slug", flat=True):
        placement = Placement.objects.filter(slug=slug).first()
        if placement is not None and placement.cell_id != cell_name:
            continue
        if placement is None or placement.state != Placement.State.ACTIVE:
            placement_activate(slug=slug)
            adopted.append(slug)
    return adopted
