"""Directory reads."""

from __future__ import annotations

from dataclasses import dataclass

from tenants.cells.models import Placement, PlacementHost


@dataclass(frozen=True)
class CellAddress:
    """Where a tenant is served: the cell's name and the URL its front proxy reaches it at."""

    name: str
    url: str


def cell_for_host(*, host: str) -> CellAddress | None:
    """The cell serving ``host`` (an active placement), or None."""
    row = (
        PlacementHost.objects.filter(host=host, placement__state=Placement.State.ACTIVE)
        .values_list("placement__cell__name", "placement__cell__url")
        .first()
    )
    return CellAddress(name=row[0], url=row[1]) if row is not None else None


def placement_of(*, slug: str) -> Placement | None:
    return Placement.objects.select_related("cell").filter(slug=slug).first()


def active_host_cells() -> list[tuple[str, str]]:
    """Every routable host with its cell's URL, by host."""
    return list(
        PlacementHost.objects.filter(placement__state=Placement.State.ACTIVE)
        .order_by("host")
        .values_list("host", "placement__cell__url")
    )
