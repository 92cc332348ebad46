"""django-tenants' PostgreSQL backend with one addition: a connection that has served more
than ``DB_MAX_SCHEMAS_PER_CONNECTION`` distinct schemas is closed (issue 20, item 2).

Why: a PostgreSQL backend keeps the relcache / catcache entries of every table it has touched,
for its whole life, and ``DISCARD ALL`` frees none of them. A tenant's tables cost a backend
~0.17 MiB, so a connection that walks 2,000 tenants holds ~340 MiB of private memory. Django
bounds a connection only by age (``CONN_MAX_AGE``), and behind PgBouncer not even that reaches
the server. Counting the distinct schemas a connection serves bounds the memory directly.

Only public, documented methods are overridden: ``close_if_unusable_or_obsolete`` (which Django
calls at the start and end of every request through ``close_old_connections``, as do Channels'
``database_sync_to_async`` and Celery's Django fix-up) and ``connect`` (a new server session
starts with empty caches, so its count starts at zero). Nothing of django-tenants' own is
touched: the schema is read from ``schema_name``, its documented attribute.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django_tenants.postgresql_backend.base import DatabaseWrapper as TenantDatabaseWrapper


def schema_bound() -> int:
    """The configured bound; 0 (or less) disables it."""
    return int(getattr(settings, "DB_MAX_SCHEMAS_PER_CONNECTION", 0) or 0)


class DatabaseWrapper(TenantDatabaseWrapper):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Distinct schemas the current server session has served (a set: the same tenant's
        # requests again and again never close anything).
        self.schemas_served: set[str] = set()
        super().__init__(*args, **kwargs)

    def connect(self) -> None:
        super().connect()
        self.schemas_served = set()

    def close_if_unusable_or_obsolete(self) -> None:
        super().close_if_unusable_or_obsolete()
        if self.connection is None:
            return
        # Counted here, at request start and end, so the schema a request ran in is counted
        # once it is done (the end-of-request call) and never closed under a running request.
        schema = self.schema_name
        if schema:
            self.schemas_served.add(schema)
        bound = schema_bound()
        # Never inside a transaction (close() would only mark it for rollback).
        if bound > 0 and len(self.schemas_served) > bound and not self.in_atomic_block:
            self.close()
