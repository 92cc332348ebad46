"""migrate_schemas executor: migrates only the tenant schemas that are behind, one schema at a time
per worker, recording progress and, with ``--continue-on-error``, carrying on past failed schemas.

django-tenants runs a full ``migrate`` per schema even when nothing is pending (about a second of
graph loading each); one SQL pass finds the schemas that are behind and only those are migrated,
so a rerun after a killed Job resumes with what is left. Plugged in with ``GET_EXECUTOR_FUNCTION``;
wraps whichever executor ``--executor`` names and drives it through its public
``run_migrations(tenants=[schema])``, one schema per call, so that a failure is attributed to its
schema (the stock executors stop the whole loop at the first one) and progress is counted.
"""

import logging
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.migration_executors import get_executor as get_django_tenants_executor
from django_tenants.utils import get_public_schema_name

from tenants.migration_progress import MigrationProgress
from tenants.migration_state import schemas_behind

logger = logging.getLogger("tenants.migrations")

# Options under which every schema must be visited even if it looks up to date.
_VISIT_ALL_OPTIONS = ("fake", "fake_initial", "plan", "check_unapplied", "prune", "run_syncdb")
# The only stock executor whose schemas run in processes of their own, so in parallel threads.
_SUBPROCESS = "subprocess"


class PendingOnlyExecutor:
    def __init__(self, inner_class: type[Any], args: Any, options: dict[str, Any]) -> None:
        self._inner = inner_class(args, options)
        self._codename = str(inner_class.codename)
        self._options = options
        self._targeted = bool(options.get("app_label") or options.get("migration_name"))

    def run_migrations(self, tenants: Iterable[str]) -> None:
        schemas = list(tenants)
        public = get_public_schema_name()
        if self._targeted or any(self._options.get(name) for name in _VISIT_ALL_OPTIONS):
            self._inner.run_migrations(tenants=schemas)
            return
        if public in schemas:
            self._inner.run_migrations(tenants=[public])
        tenant_schemas = [schema for schema in schemas if schema != public]
        if not tenant_schemas:
            return
        behind_set = set(schemas_behind(tenant_schemas))
        behind = [schema for schema in tenant_schemas if schema in behind_set]
        skipped = len(tenant_schemas) - len(behind)
        if skipped and int(self._options.get("verbosity", 1)) >= 1:
            sys.stdout.write(
                f"[pending-only] {skipped} of {len(tenant_schemas)} tenant schema(s) already at the "
                f"latest migration; migrating {len(behind)}\n"
            )
        if self._options.get("schema_name"):
            # One named schema: an operator's --schema, or a subprocess executor's child (the
            # parent run counts it). Nothing to track or carry on past.
            if behind:
                self._inner.run_migrations(tenants=behind)
            return
        self._run_tracked(tenant_schemas=len(tenant_schemas), behind=behind)

    def run_multi_type_migrations(self, tenants: Any) -> None:
        self._inner.run_multi_type_migrations(tenants=tenants)

    # --- one pass over the schemas that are behind ------------------------------------------

    def _workers(self) -> int:
        if self._codename != _SUBPROCESS:
            # In-process executors share this process's app registry and connection: one at a time.
            return 1
        explicit = self._options.get("parallel")
        configured = (
            explicit if explicit is not None else getattr(settings, "TENANT_SUBPROCESS_PARALLEL", 1)
        )
        return max(1, int(configured))

    def _run_tracked(self, *, tenant_schemas: int, behind: list[str]) -> None:
        continue_on_error = bool(self._options.get("continue_on_error"))
        workers = self._workers()
        progress = MigrationProgress.start(
            executor=self._codename,
            parallel=workers,
            continue_on_error=continue_on_error,
            tenant_schemas=tenant_schemas,
            to_migrate=len(behind),
        )
        if workers == 1 and self._codename != _SUBPROCESS:
            for schema in behind:
                error, seconds = self._migrate_one(schema)
                self._record(progress, schema, error, seconds)
                if error is not None and not continue_on_error:
                    break
        else:
            self._run_pool(progress, behind, workers, continue_on_error)
        progress.finish()
        if progress.failed:
            names = ", ".join(sorted(progress.failed))
            raise CommandError(
                f"{len(progress.failed)} tenant schema(s) failed to migrate: {names}"
                + ("" if continue_on_error else " (stopped at the first failure)")
            )

    def _run_pool(
        self,
        progress: MigrationProgress,
        behind: list[str],
        workers: int,
        continue_on_error: bool,
    ) -> None:
        # Schemas are handed out as workers free up rather than all queued at once, so stopping
        # after a failure leaves the rest untouched; in-flight children are never killed mid-DDL.
        pending = iter(behind)
        running: dict[Future[tuple[str | None, float]], str] = {}
        stopping = False
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="migrate") as pool:
            while True:
                while not stopping and len(running) < workers:
                    schema = next(pending, None)
                    if schema is None:
                        break
                    running[pool.submit(self._migrate_one, schema)] = schema
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    schema = running.pop(future)
                    error, seconds = future.result()
                    self._record(progress, schema, error, seconds)
                    if error is not None and not continue_on_error:
                        stopping = True

    def _migrate_one(self, schema: str) -> tuple[str | None, float]:
        started = time.monotonic()
        try:
            self._inner.run_migrations(tenants=[schema])
        except SystemExit as exit_:
            # The subprocess executor reports a child's failure as its exit status; the child
            # printed its traceback, prefixed with the schema, to the Job's log.
            return f"migrate exited with status {exit_.code}", time.monotonic() - started
        except Exception as exc:  # attributed to the schema, logged in full below
            logger.exception("migrate_schemas: %s failed", schema)
            # The connection may be mid-transaction in the failed schema: start the next afresh.
            connection.close()
            return f"{type(exc).__name__}: {exc}", time.monotonic() - started
        return None, time.monotonic() - started

    @staticmethod
    def _record(
        progress: MigrationProgress, schema: str, error: str | None, seconds: float
    ) -> None:
        if error is None:
            progress.schema_done(schema=schema, seconds=seconds)
        else:
            progress.schema_failed(schema=schema, seconds=seconds, error=error)


def get_executor(
    codename: str | None = None,
) -> Callable[[Any, dict[str, Any]], PendingOnlyExecutor]:
    inner_class = get_django_tenants_executor(codename)

    def build(args: Any, options: dict[str, Any]) -> PendingOnlyExecutor:
        return PendingOnlyExecutor(inner_class, args, options)

    return build
