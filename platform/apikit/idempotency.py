"""Idempotency-Key for POST (draft-ietf-httpapi-idempotency-key-header).

A key is claimed in its own committed statement before the view runs, so a concurrent duplicate
sees the claim at once (409 ``idempotency_key_in_use``) instead of running the write twice. The
view then runs in one transaction together with storing its response: the business rows and the
stored response commit together or not at all, so a crash between them can never lead a retry
to write twice. Only 2xx responses are stored; after any other answer the claim is released and
the client may retry (with the same or a corrected body).

Every time a claim is judged by comes from one clock, the database's: ``locked_until`` is
``now()`` plus the timeout, and a claim records the PostgreSQL server it was made on
(``server_started_at = pg_postmaster_start_time()``), so an app server whose clock is off cannot
take over a live claim, nor keep a dead one (docs/decisions.md, issue 22 item 5).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import BooleanField, F, Func, Q
from django.db.models.functions import Now
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.request import Request

from apikit.errors import APIError
from apikit.models import IdempotencyRecord, server_started

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
RETENTION = timedelta(hours=24)
# A claim whose request died without answering is taken over after this long.
CLAIM_TIMEOUT = timedelta(seconds=60)
MAX_KEY_LENGTH = 255
_REPLAYED_RESPONSE_HEADERS = ("Content-Type", "Location", "ETag")

KEY_REUSED_DETAIL = (
    "This Idempotency-Key was already used with a different request body; use a new key for a "
    "new request."
)
KEY_IN_USE_DETAIL = (
    "A request with this Idempotency-Key is still being processed; retry in a few seconds."
)


def _started_elsewhere() -> Func:
    """True when the claim was made on another PostgreSQL server than the one answering now (a
    restart since, or a promoted standby): its request's transaction cannot commit any more."""
    return Func(
        F("server_started_at"),
        server_started(),
        template="(%(expressions)s)",
        arg_joiner=" IS DISTINCT FROM ",
        output_field=BooleanField(),
    )


def fingerprint(request: Request) -> str:
    """Method, path and the exact body bytes: the same key with anything else is a reuse."""
    digest = hashlib.sha256()
    digest.update(request.method.encode() if request.method else b"")
    digest.update(b"\0" + request.path.encode() + b"\0")
    digest.update(request.body)  # the exact bytes: DRF proxies the HttpRequest's body
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        bytes(record.response_body or b""), status=record.response_status or 200
    )
    for name, value in record.response_headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _claim(*, user_id: Any, key: str, request_fingerprint: str) -> int | HttpResponse:
    """Claim the key (returns the record's id), or answer for it: a replay, 422 (other body) or
    409 (still running)."""
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                user_id=user_id,
                key=key,
                request_fingerprint=request_fingerprint,
                locked_until=Now() + CLAIM_TIMEOUT,
                server_started_at=server_started(),
            ).pk
    except IntegrityError:
        pass
    existing = IdempotencyRecord.objects.get(user_id=user_id, key=key)
    if existing.request_fingerprint != request_fingerprint:
        raise APIError(status=422, code="idempotency_key_reused", detail=KEY_REUSED_DETAIL)
    if existing.state == IdempotencyRecord.State.COMPLETED:
        return _replay(existing)
    # Taken over when its timeout passed on the database's clock, or at once when it was made on
    # another PostgreSQL server (a restart since, or failover to a standby): no transaction of
    # that server can still commit, so the request that claimed it either stored its response
    # with its write (and this record says COMPLETED) or never will. The takeover records the
    # current server, so a second retry arriving while the takeover runs gets 409. Crash
    # recovery keeps pg_postmaster_start_time(): such a claim waits for its timeout (never runs
    # twice). The app server's clock plays no part.
    taken_over = (
        IdempotencyRecord.objects.filter(pk=existing.pk, state=IdempotencyRecord.State.IN_PROGRESS)
        .filter(Q(locked_until__lt=Now()) | Q(_started_elsewhere()))
        .update(locked_until=Now() + CLAIM_TIMEOUT, server_started_at=server_started())
    )
    if taken_over:
        return existing.pk
    raise APIError(status=409, code="idempotency_key_in_use", detail=KEY_IN_USE_DETAIL)


def run_idempotently(
    request: Request, *, key: str, handler: Callable[[], HttpResponse]
) -> HttpResponse:
    """Run ``handler`` (the view) at most once per (user, key)."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise APIError(
            status=400,
            code="invalid_idempotency_key",
            detail=f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} characters.",
        )
    claimed = _claim(user_id=request.user.pk, key=key, request_fingerprint=fingerprint(request))
    if isinstance(claimed, HttpResponse):
        return claimed
    with transaction.atomic():
        response = handler()
        succeeded = 200 <= response.status_code < 300
        if succeeded:
            _store(record_id=claimed, response=response)
        else:
            transaction.set_rollback(True)
    if not succeeded:
        IdempotencyRecord.objects.filter(pk=claimed).delete()
    return response


def _store(*, record_id: int, response: HttpResponse) -> None:
    render = getattr(response, "render", None)
    if callable(render):
        render()
    headers = {
        name: response[name] for name in _REPLAYED_RESPONSE_HEADERS if response.has_header(name)
    }
    IdempotencyRecord.objects.filter(pk=record_id).update(
        state=IdempotencyRecord.State.COMPLETED,
        response_status=response.status_code,
        response_body=response.content,
        response_headers=headers,
    )


# Keys with these prefixes are kept longer: sync devices retry a push after days offline.
RETENTION_BY_PREFIX = {"sync-push:": timedelta(days=7)}


def idempotency_records_purge(*, older_than: timedelta = RETENTION) -> int:
    """Delete records past retention in the current tenant; returns how many."""
    now = timezone.now()
    stale = IdempotencyRecord.objects.filter(created_at__lt=now - older_than)
    for prefix, retention in RETENTION_BY_PREFIX.items():
        stale = stale.exclude(
            key__startswith=prefix, created_at__gte=now - max(retention, older_than)
        )
    deleted, _ = stale.delete()
    return deleted
