"""``sync_push``: one push batch, decided and written set-wise, answered with a result per row,
a summary and a fresh cursor. Runs inside the caller's transaction (the idempotency wrapper's,
which stores the response bytes in the same commit)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from django.db import transaction

from apikit.json import dumps
from apikit.request_context import RequestContext
from audit.models import AuditEvent
from sync.push.engine import PushOutcome, push_apply
from sync.push.parsing import PushBatch
from sync.push.rows import Mode, Status
from sync.registry import sync_table

# WatermelonDB keeps rows it was told were rejected as still needing sync; a row the server
# deleted is among them, so the device does not mark it synced (the next pull carries its
# tombstone).
_WMDB_REJECTED = frozenset({Status.REJECTED, Status.CONFLICT, Status.GONE})


def response_bytes(body: dict[str, Any]) -> bytes:
    """The answer's bytes, also what the idempotency store keeps for a replay."""
    return dumps(body)


@transaction.atomic
def sync_push(
    *,
    user: Any,
    device_id: uuid.UUID | None,
    batch: PushBatch,
    batch_id: str,
    context: RequestContext | None,
) -> dict[str, Any]:
    """Apply ``batch`` for ``user`` (and the token's device); returns the response body."""
    from sync.cursor import cursor_after_push
    from sync.services import device_seen

    outcome = push_apply(user=user, device_id=device_id, batch=batch)
    if device_id is not None:
        device_seen(device_id=str(device_id))
    _audit(outcome, context=context)
    body: dict[str, Any] = {
        "batch_id": batch_id,
        "results": [result.as_dict() for result in outcome.results],
        "summary": outcome.summary,
        # Native: fresh only when nothing but this push changed since the client's last pull
        # cursor; otherwise that cursor back, so other writers' changes are never skipped.
        # WatermelonDB cannot take server values from a push answer, so its cursor never skips
        # the push's own rows: the next pull brings them back with the server's version and
        # normalised values.
        "cursor": batch.since if batch.wmdb else cursor_after_push(user=user, since=batch.since),
    }
    if batch.wmdb:
        rejected: dict[str, list[str]] = defaultdict(list)
        for result in outcome.results:
            if result.status in _WMDB_REJECTED:
                rejected[result.table].append(result.id)
        body["experimentalRejectedIds"] = dict(rejected)
    return body


def _audit(outcome: PushOutcome, *, context: RequestContext | None) -> None:
    """One audit event per table and kind of write, holding the ids written (one bulk insert)."""
    events = []
    kinds = {
        Mode.INSERT: AuditEvent.Action.CREATE,
        Mode.UPDATE: AuditEvent.Action.UPDATE,
        Mode.DELETE: AuditEvent.Action.DELETE,
    }
    for table, by_mode in outcome.written_by_mode.items():
        spec = sync_table(table)
        for mode, ids in by_mode.items():
            if not ids:
                continue
            event = AuditEvent(
                action=kinds[mode],
                object_type=f"{spec.model._meta.app_label}.{spec.model._meta.model_name}",
                object_ids=ids,
            )
            if context is not None:
                event.actor_id = uuid.UUID(context.actor_id) if context.actor_id else None
                event.actor_email = context.actor_email[:254]
                event.user_agent = context.user_agent[:400]
                event.request_id = context.request_id[:128]
                event.trace_id = context.trace_id[:64]
            events.append(event)
    if events:
        AuditEvent.objects.bulk_create(events)
