"""The tenant -> cell directory: cells, where each tenant lives, and the hosts that reach it.

One directory serves every cell, so these rows live in the directory database (tenants.cells.conf),
never in a tenant schema. Slugs and hosts are unique across the fleet here: that is what stops two
cells from provisioning the same tenant or answering for the same host.
"""

from django.db import models


class Cell(models.Model):
    """One complete Verdant stack (web, workers, beat, PostgreSQL, Redis)."""

    name = models.SlugField(max_length=40, primary_key=True)
    # Where a front proxy sends this cell's traffic (its ingress or load balancer), e.g.
    # https://cell-eu-1.internal.example — never shown to a browser as a page to visit.
    url = models.URLField(max_length=200)
    # Operators close a full cell to new tenants; existing tenants stay.
    accepts_tenants = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Placement(models.Model):
    """Which cell holds a tenant. ``claimed`` while the cell provisions it (routing ignores it);
    ``active`` once the tenant is ready there."""

    class State(models.TextChoices):
        CLAIMED = "claimed", "Being provisioned"
        ACTIVE = "active", "Active"

    slug = models.CharField(max_length=40, unique=True)
    cell = models.ForeignKey(Cell, on_delete=models.PROTECT, related_name="placements")
    state = models.CharField(max_length=10, choices=State.choices, default=State.CLAIMED)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return f"{self.slug} @ {self.cell_id}"


class PlacementHost(models.Model):
    """A host name that reaches a placed tenant (its Domain rows in the cell)."""

    host = models.CharField(max_length=253, primary_key=True)
    placement = models.ForeignKey(Placement, on_delete=models.CASCADE, related_name="hosts")

    class Meta:
        ordering = ["host"]

    def __str__(self) -> str:
        return self.host
