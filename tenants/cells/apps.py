from django.apps import AppConfig


class CellsConfig(AppConfig):
    """The tenant -> cell directory (docs/scaling.md, "Cells"): which stack serves which tenant."""

    name = "tenants.cells"
    label = "cells"
    verbose_name = "Cells"
