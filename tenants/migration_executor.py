"""migrate_schemas executor that skips tenant schemas already at the latest migration.

django-tenants runs a full ``migrate`` per schema even when nothing is pending (about a second of
graph loading each); one SQL pass finds the schemas that are behind and only those are migrated.
Plugged in with ``GET_EXECUTOR_FUNCTION``; wraps whichever executor ``--executor`` names.
"""

import sys
from collections.abc import Callable, Iterable
from typing import Any

from django_tenants.migration_executors import get_executor as get_django_tenants_executor
from django_tenants.utils import get_public_schema_name

from tenants.migration_state import schemas_behind

# Options under which every schema must be visited even if it looks up to date.
_VISIT_ALL_OPTIONS = ("fake", "fake_initial", "plan", "check_unapplied", "prune", "run_syncdb")


class PendingOnlyExecutor:
    def __init__(self, inner_class: type[Any], args: Any, options: dict[str, Any]) -> None:
        self._inner = inner_class(args, options)
        self._options = options
        self._targeted = bool(options.get("app_label") or options.get("migration_name"))

    def run_migrations(self, tenants: Iterable[str]) -> None:
        schemas = list(tenants)
        public = get_public_schema_name()
        if self._targeted or any(self._options.get(name) for name in _VISIT_ALL_OPTIONS):
            self._inner.run_migrations(tenants=schemas)
            return
        tenant_schemas = [schema for schema in schemas if schema != public]
        behind = set(schemas_behind(tenant_schemas)) if tenant_schemas else set()
        selected = [schema for schema in schemas if schema == public or schema in behind]
        skipped = len(tenant_schemas) - len(behind)
        if skipped and int(self._options.get("verbosity", 1)) >= 1:
            sys.stdout.write(
                f"[pending-only] {skipped} of {len(tenant_schemas)} tenant schema(s) already at the "
                f"latest migration; migrating {len(behind)}\n"
            )
        if selected:
            self._inner.run_migrations(tenants=selected)

    def run_multi_type_migrations(self, tenants: Any) -> None:
        self._inner.run_multi_type_migrations(tenants=tenants)


def get_executor(
    codename: str | None = None,
) -> Callable[[Any, dict[str, Any]], PendingOnlyExecutor]:
    inner_class = get_django_tenants_executor(codename)

    def build(args: Any, options: dict[str, Any]) -> PendingOnlyExecutor:
        return PendingOnlyExecutor(inner_class, args, options)

    return build
