"""Bulk Data export jobs: kick-off, polling, deletion, the run itself and expiry.

The run reads every resource of the export inside ONE ``REPEATABLE READ`` transaction: the
snapshot taken by its first statement is what every file shows, and that statement's clock is the
manifest's ``transactionTime`` (a write committed after it is in no file; the next export's
``_since`` picks it up). Progress and cancellation travel through the tenant's cache, because the
job row cannot be seen changing from inside the snapshot.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.models import User
from apikit.policy import BULK_EXPORT_SYSTEM
from apikit.request_context import RequestContext
from apikit.tenancy import current_schema_name
from apikit.tenant_tasks import tenant_task_send
from apikit.uploads import stored_file_delete
from audit.models import AuditEvent
from audit.services import audit_event_record, audit_object_type
from clinical.bulkdata.params import KickoffRequest
from clinical.bulkdata.resources import Source, export_sources
from clinical.bulkdata.writer import CHUNK, ExportCancelledError, Written, source_write
from clinical.models import BulkExport, BulkExportLevel, BulkExportStatus

logger = logging.getLogger(__name__)

RUN_TASK = "clinical.bulk_export_run"
KICKOFF_PERMISSION = {
    BulkExportLevel.SYSTEM: BULK_EXPORT_SYSTEM,
    BulkExportLevel.PATIENT: "clinical.add_bulkexport",
}
EXPORT_FAILED = "The export failed; start a new one."
EXPORT_FORBIDDEN = "The requester may no longer run this export."
_LIVE = (BulkExportStatus.ACCEPTED, BulkExportStatus.IN_PROGRESS)


class ExportBusyError(Exception):
    """Another export of this tenant is accepted or running."""


class PolledTooFastError(Exception):
    """The status was asked for again sooner than Retry-After allowed."""


def retry_after_seconds() -> int:
    return int(settings.FHIR_BULK_RETRY_AFTER_SECONDS)


def _progress_key(export_id: Any) -> str:
    return f"fhir-bulk:{export_id}:progress"


def _cancel_key(export_id: Any) -> str:
    return f"fhir-bulk:{export_id}:cancelled"


def _cache_set(key: str, value: str) -> None:
    # Progress and cancellation are conveniences: a Redis outage must not fail the export (a
    # deleted export is still removed when the run ends, through the row).
    try:
        cache.set(key, value, timeout=int(settings.FHIR_BULK_TIME_LIMIT_SECONDS))
    except RedisError:
        logger.warning("fhir bulk: cache unreachable, %s not stored", key)


def _cache_get(key: str) -> Any:
    try:
        return cache.get(key)
    except RedisError:
        return None


# --- kick-off, polling, deletion ---------------------------------------------------------------


def bulk_export_kickoff(
    *, user: Any, request: KickoffRequest, request_url: str, context: RequestContext
) -> BulkExport:
    """Accept an export and queue its run after commit; ``ExportBusyError`` when the tenant already has
    one accepted or running (decided by the partial unique constraint, race-free)."""
    try:
        with transaction.atomic():
            export = BulkExport.objects.create(
                requested_by=user,
                level=request.level,
                request_url=request_url,
                resource_types=list(request.resource_types),
                since=request.since,
                output_format=request.output_format,
                audit_context=dataclasses.asdict(context),
            )
    except IntegrityError as exc:
        raise ExportBusyError from exc
    schema = current_schema_name()
    transaction.on_commit(
        lambda: tenant_task_send(
            name=RUN_TASK, schema_name=schema, queue=settings.FHIR_BULK_QUEUE or None
        )
    )
    return export


@dataclass(frozen=True)
class PollState:
    export: BulkExport
    progress: str


def bulk_export_poll(*, export: BulkExport) -> PollState:
    """Record a status request; ``PolledTooFastError`` when the last one of a running export was less
    than half of Retry-After ago (a client that honours Retry-After is never refused)."""
    if export.status in _LIVE:
        now = timezone.now()
        earliest = now - timedelta(seconds=retry_after_seconds() / 2)
        recorded = (
            BulkExport.objects.filter(pk=export.pk)
            .filter(Q(last_polled_at__isnull=True) | Q(last_polled_at__lte=earliest))
            .update(last_polled_at=now)
        )
        if not recorded:
            raise PolledTooFastError
    progress = _cache_get(_progress_key(export.pk)) or (
        "accepted" if export.status == BulkExportStatus.ACCEPTED else "in progress"
    )
    return PollState(export=export, progress=str(progress))


def _files_delete(paths: list[str]) -> None:
    # Only the current tenant's files (apikit.uploads: anything outside its prefix is left).
    for path in paths:
        stored_file_delete(path=path)


def bulk_export_delete(*, export: BulkExport) -> None:
    """Cancel or discard an export: the row goes at once (its status URL answers 404), a running
    worker stops at its next chunk, and the files go after commit."""
    paths = [item["path"] for item in export.output]
    if export.status in _LIVE:
        _cache_set(_cancel_key(export.pk), "1")
    with transaction.atomic():
        BulkExport.objects.filter(pk=export.pk).delete()
        transaction.on_commit(lambda: _files_delete(paths))


def bulk_export_expired(*, export: BulkExport, now: datetime | None = None) -> bool:
    return export.expires_at is not None and export.expires_at <= (now or timezone.now())


# --- the run -----------------------------------------------------------------------------------


def _claim_next() -> BulkExport | None:
    export = BulkExport.objects.filter(active=True, status=BulkExportStatus.ACCEPTED).first()
    if export is None:
        return None
    claimed = BulkExport.objects.filter(pk=export.pk, status=BulkExportStatus.ACCEPTED).update(
        status=BulkExportStatus.IN_PROGRESS, started_at=timezone.now()
    )
    return export if claimed else None


def _snapshot_write(
    *, export: BulkExport, user: Any, context: RequestContext
) -> tuple[datetime, list[Written]]:
    """Every file of ``export``, read in one REPEATABLE READ transaction."""
    if connection.in_atomic_block:
        raise RuntimeError("A bulk export opens its own REPEATABLE READ transaction.")
    written: list[Written] = []

    def on_chunk(source: Source, rows: list[Any], count: int) -> None:
        if source.audited_model is not None:
            audit_event_record(
                context=context,
                action=AuditEvent.Action.EXPORT,
                object_type=audit_object_type(source.audited_model),
                # Audited types are fetched as named rows (resources._iterate_rows): ``id``.
                object_ids=[row.id for row in rows],
            )
        _cache_set(_progress_key(export.pk), f"{source.resource_type}: {count} written")
        if _cache_get(_cancel_key(export.pk)):
            raise ExportCancelledError

    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                # The first query takes the snapshot; its clock is the export's transactionTime.
                cursor.execute("SELECT clock_timestamp()")
                transaction_time: datetime = cursor.fetchone()[0]
            sources = export_sources(
                user=user,
                resource_types=tuple(export.resource_types),
                since=export.since,
                chunk_size=CHUNK,
            )
            for source in sources:
                done = source_write(source=source, export_id=export.pk, on_chunk=on_chunk)
                if done is not None:
                    written.append(done)
    except BaseException:
        _files_delete([item.path for item in written])
        raise
    return transaction_time, written


def bulk_export_run_next() -> BulkExport | None:
    """Run the tenant's accepted export, if any (the task carries no arguments: at most one export
    per tenant is live, so "the next one" is the one queued)."""
    export = _claim_next()
    if export is None:
        return None
    user = User.objects.filter(pk=export.requested_by_id, is_active=True).first()
    if user is None or not user.has_perm(KICKOFF_PERMISSION[BulkExportLevel(export.level)]):
        _fail(export, EXPORT_FORBIDDEN)
        return export
    try:
        transaction_time, written = _snapshot_write(
            export=export, user=user, context=RequestContext(**export.audit_context)
        )
    except ExportCancelledError:
        return export
    except Exception:
        logger.exception("fhir bulk export %s failed", export.pk)
        _fail(export, EXPORT_FAILED)
        return export
    finished = timezone.now()
    output = [{"type": w.resource_type, "path": w.path, "count": w.count} for w in written]
    updated = BulkExport.objects.filter(pk=export.pk).update(
        status=BulkExportStatus.COMPLETED,
        active=False,
        transaction_time=transaction_time,
        output=output,
        finished_at=finished,
        expires_at=finished + timedelta(seconds=int(settings.FHIR_BULK_EXPIRES_SECONDS)),
    )
    if not updated:  # deleted while it ran
        _files_delete([w.path for w in written])
        return export
    export.refresh_from_db()
    return export


def _fail(export: BulkExport, error: str) -> None:
    now = timezone.now()
    BulkExport.objects.filter(pk=export.pk).update(
        status=BulkExportStatus.FAILED,
        active=False,
        error=error,
        finished_at=now,
        expires_at=now + timedelta(seconds=int(settings.FHIR_BULK_EXPIRES_SECONDS)),
    )


# --- expiry -------------------------------------------------------------------------------------


def bulk_exports_purge(*, now: datetime | None = None) -> int:
    """Delete the active schema's expired exports with their files, and fail live ones older
    than the task's time limit (their worker died). Returns the number deleted."""
    now = now or timezone.now()
    stuck_before = now - timedelta(seconds=int(settings.FHIR_BULK_TIME_LIMIT_SECONDS))
    for export in BulkExport.objects.filter(status__in=_LIVE, created_at__lt=stuck_before):
        _fail(export, EXPORT_FAILED)
    expired = list(BulkExport.objects.filter(expires_at__lte=now))
    for export in expired:
        bulk_export_delete(export=export)
    return len(expired)
