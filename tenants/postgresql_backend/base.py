"""django-tenants' PostgreSQL backend, remembering which search_path the session really holds.

Every request starts with ``set_schema_to_public()`` then ``set_tenant(tenant)``; neither sends
SQL, but each makes django-tenants forget what the session holds, so it re-sends
``SET search_path`` on the first query of every request, even when a persistent connection
already holds exactly that path from the previous request. This wrapper remembers the path last
SET on the session and keeps it when the new tenant's path is the same, saving one round trip
per request for a worker serving the same tenant again.

The memory is dropped whenever the session's path may have changed under it: on close, on
ROLLBACK and on ROLLBACK TO SAVEPOINT (a SET is transactional in PostgreSQL), exactly where
django-tenants drops its own cache. tests/tenants/test_search_path.py covers these paths.

It also loads timestamptz values with psycopg's C loader (``timestamps``) when Django works in
UTC, as it does here.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper
from django_tenants.utils import get_limit_set_calls

from observability import query_spans

from .timestamps import UTC, adapters_with_utc_loader


class DatabaseWrapper(TenantDatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._session_search_path: list[str] | None = None
        super().__init__(*args, **kwargs)
        if query_spans.installed():  # tracing is on (observability/query_spans.py)
            query_spans.add_to(self)

    def get_connection_params(self) -> dict[str, Any]:
        params: dict[str, Any] = super().get_connection_params()
        if settings.USE_TZ and self.timezone is UTC and "context" in params:
            params["context"] = adapters_with_utc_loader(params["context"])
        return params

    def _cursor(self, name: str | None = None) -> Any:
        cursor = super()._cursor(name)
        if self.search_path_set_schemas is not None:
            self._session_search_path = self.search_path_set_schemas
        return cursor

    def set_tenant(self, tenant: Any, include_public: bool = True) -> None:
        super().set_tenant(tenant, include_public)
        remembered = getattr(self, "_session_search_path", None)
        if (
            get_limit_set_calls()
            and remembered is not None
            and self.connection is not None
            and remembered == self._get_cursor_search_paths()
        ):
            self.search_path_set_schemas = remembered

    def close(self) -> None:
        self._session_search_path = None
        super().close()

    def rollback(self) -> None:
        self._session_search_path = None
        super().rollback()

    def savepoint_rollback(self, sid: Any) -> None:
        try:
            super().savepoint_rollback(sid)
        finally:
            self._session_search_path = None
