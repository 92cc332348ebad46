"""Sends the directory's models to the directory database, and nothing else there.

Installed (first in DATABASE_ROUTERS) only when a separate directory database is configured;
django-tenants' router decides everything else and never migrates onto a second alias.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model

from tenants.cells.conf import APP_LABEL, DIRECTORY_ALIAS


class DirectoryRouter:
    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return DIRECTORY_ALIAS if model._meta.app_label == APP_LABEL else None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return DIRECTORY_ALIAS if model._meta.app_label == APP_LABEL else None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        if db == DIRECTORY_ALIAS:
            return app_label == APP_LABEL
        # No stray, empty copy of the directory in a cell's own database to be mistaken for it.
        return False if app_label == APP_LABEL else None
