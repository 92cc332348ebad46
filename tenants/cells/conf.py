"""Where the directory lives and which cell this process belongs to (settings: CELL_NAME,
CELL_URL, CELLS_DIRECTORY_DATABASE_URL)."""

from __future__ import annotations

from django.conf import settings

# The DATABASES alias of a separate directory database (settings/base.py adds it when
# CELLS_DIRECTORY_DATABASE_URL is set). Without one, the directory is this database's public schema.
DIRECTORY_ALIAS = "cells_directory"
APP_LABEL = "cells"


def directory_alias() -> str:
    return DIRECTORY_ALIAS if DIRECTORY_ALIAS in settings.DATABASES else "default"


def this_cell() -> str:
    """This stack's cell name; "" when cells are off (one stack, today's behaviour)."""
    return str(settings.CELL_NAME)
