"""Progress of a ``migrate_schemas`` pass over the tenant schemas: a log line per schema, a summary
every ``MIGRATION_PROGRESS_SUMMARY_SECONDS``, and a ``MigrationRun`` row in the public schema that
the operators' admin shows (tenants done / left / failed, and which failed).

Written from the one thread that drives the run (never from the per-schema workers), so the row is
updated by a single connection that stays on the public schema.
"""

from __future__ import annotations

import logging
import socket
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from apikit.tenancy import activate_public
from tenants.models import MigrationFailure, MigrationRun

logger = logging.getLogger("tenants.migrations")

DEFAULT_SUMMARY_SECONDS = 30.0
# A failure's message is kept short in the row: the whole traceback is in the Job's log.
_ERROR_CHARS = 2000


def _on_public() -> None:
    # The standard executor leaves the connection wherever a failed schema's migrate stopped.
    activate_public()


@dataclass
class MigrationProgress:
    run_id: int
    to_migrate: int
    summary_seconds: float
    started: float = field(default_factory=time.monotonic)
    last_summary: float = field(default_factory=time.monotonic)
    done: int = 0
    failed: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        *,
        executor: str,
        parallel: int,
        continue_on_error: bool,
        tenant_schemas: int,
        to_migrate: int,
    ) -> MigrationProgress:
        _on_public()
        # Only one migration Job runs at a time (a Helm hook): a run still "running" was killed.
        interrupted = MigrationRun.objects.filter(status=MigrationRun.Status.RUNNING).update(
            status=MigrationRun.Status.INTERRUPTED
        )
        run = MigrationRun.objects.create(
            executor=executor,
            parallel=parallel,
            continue_on_error=continue_on_error,
            host=socket.gethostname()[:255],
            tenant_schemas=tenant_schemas,
            already_current=tenant_schemas - to_migrate,
            to_migrate=to_migrate,
        )
        if interrupted:
            logger.warning(
                "migrate_schemas: %d earlier run(s) never finished (killed); marked interrupted",
                interrupted,
            )
        logger.info(
            "migrate_schemas run %d: %d tenant schema(s), %d already at the latest migration, "
            "%d to migrate (executor %s, parallel %d%s)",
            run.pk,
            tenant_schemas,
            tenant_schemas - to_migrate,
            to_migrate,
            executor,
            parallel,
            ", continue on error" if continue_on_error else "",
        )
        summary_seconds = float(
            getattr(settings, "MIGRATION_PROGRESS_SUMMARY_SECONDS", DEFAULT_SUMMARY_SECONDS)
        )
        return cls(run_id=run.pk, to_migrate=to_migrate, summary_seconds=summary_seconds)

    @property
    def left(self) -> int:
        return self.to_migrate - self.done - len(self.failed)

    def schema_done(self, *, schema: str, seconds: float) -> None:
        self.done += 1
        logger.info(
            "migrate_schemas run %d: %s migrated in %.1f s (%d done, %d failed, %d left)",
            self.run_id,
            schema,
            seconds,
            self.done,
            len(self.failed),
            self.left,
        )
        _on_public()
        MigrationRun.objects.filter(pk=self.run_id).update(
            done=F("done") + 1, updated_at=timezone.now()
        )
        self._maybe_summarise()

    def schema_failed(self, *, schema: str, seconds: float, error: str) -> None:
        self.failed.append(schema)
        logger.error(
            "migrate_schemas run %d: %s FAILED after %.1f s: %s (%d done, %d failed, %d left)",
            self.run_id,
            schema,
            seconds,
            error,
            self.done,
            len(self.failed),
            self.left,
        )
        _on_public()
        MigrationFailure.objects.create(
            run_id=self.run_id, schema_name=schema, error=error[:_ERROR_CHARS]
        )
        MigrationRun.objects.filter(pk=self.run_id).update(
            failed=F("failed") + 1, updated_at=timezone.now()
        )
        self._maybe_summarise()

    def finish(self) -> None:
        status = MigrationRun.Status.FAILED if self.failed else MigrationRun.Status.SUCCEEDED
        _on_public()
        MigrationRun.objects.filter(pk=self.run_id).update(
            status=status, finished_at=timezone.now()
        )
        self.summarise(final=True)
        if self.failed:
            logger.error(
                "migrate_schemas run %d: %d tenant schema(s) failed: %s",
                self.run_id,
                len(self.failed),
                ", ".join(sorted(self.failed)),
            )

    def _maybe_summarise(self) -> None:
        if time.monotonic() - self.last_summary >= self.summary_seconds:
            self.summarise()

    def summarise(self, *, final: bool = False) -> None:
        self.last_summary = time.monotonic()
        elapsed = self.last_summary - self.started
        finished = self.done + len(self.failed)
        # Wall time per schema at this run's parallelism: the figure docs/operations.md's
        # deadline formula takes (divided by nothing further).
        per_schema = elapsed / finished if finished else 0.0
        logger.info(
            "migrate_schemas run %d %s: %d of %d done, %d failed, %d left; %.0f s elapsed, "
            "%.2f s per schema, about %.0f s to go",
            self.run_id,
            "finished" if final else "progress",
            self.done,
            self.to_migrate,
            len(self.failed),
            self.left,
            elapsed,
            per_schema,
            per_schema * self.left,
        )
