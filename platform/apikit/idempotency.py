"""Idempotency-Key for POST (draft-ietf-httpapi-idempotency-key-header).

A key is claimed in its own committed statement before the view runs, so a concurrent duplicate
sees the claim at once (409 ``idempotency_key_in_use``) instead of running the write twice. The
view then runs in one transaction together with storing its response: the business rows and the
stored response commit together or not at all, so a crash between them can never lead a retry
to write twice. Only 2xx responses are stored; after any other answer the claim is released and
the client may retry (with the same or a corrected body).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, Func, Q
from django.http import HttpResponse
from django.utils import timezone
from rest_framework.request import Request

from apikit.errors import APIError
from apikit.models import IdempotencyRecord

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


def _server_started() -> Func:
    """When the PostgreSQL server (postmaster) started: no transaction is older than this."""
    return Func(function="pg_postmaster_start_time", output_field=DateTimeField())


def fingerprint(request: Request) -> str:
    """Method, path and the exact body bytes: the same key with anything else is a reuse."""
    digest = hashlib.sha256()
    digest.update(request.method.encode() if request.method else b"")
    digest.update(b"\0" + request.path.encode() + b"\0")
    digest.update(request._request.body)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> HttpResponse:
    response = HttpResponse(
        bytes(record.response_body or b""), status=record.response_status or 200
    )
    for name, value in record.response_headers.items():
        response[name] = value
    response[REPLAYED_HEADER] = "true"
    return response


def _claim(*, user_id: Any, key: str, request_fingerprint: str) -> IdempotencyRecord | HttpResponse:
    """Claim the key, or answer for it: a replay, 422 (other body) or 409 (still running)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(
                user_id=user_id,
                key=key,
                request_fingerprint=request_fingerprint,
                locked_until=now + CLAIM_TIMEOUT,
            )
    except IntegrityError:
        pass
    existing = IdempotencyRecord.objects.get(user_id=user_id, key=key)
    if existing.request_fingerprint != request_fingerprint:
        raise APIError(status=422, code="idempotency_key_reused", detail=KEY_REUSED_DETAIL)
    if existing.state == IdempotencyRecord.State.COMPLETED:
        return _replay(existing)
    # Taken over when its timeout passed, or at once when PostgreSQL restarted since the claim:
    # no transaction of the old server survives a restart, so the request that claimed it can
    # no longer commit (its write either committed with the stored response, and this record
    # says COMPLETED, or never will). Without this a client retrying a write that failed during
    # a database restart got 409 idempotency_key_in_use for up to CLAIM_TIMEOUT after recovery.
    # "Since the claim" is read from the latest claim (locked_until = claim time + timeout), not
    # from created_at: a takeover after the restart is itself a live claim that a second retry
    # must not take over again.
    claimed_before_restart = Q(locked_until__lt=_server_started() + CLAIM_TIMEOUT)
    taken_over = (
        IdempotencyRecord.objects.filter(pk=existing.pk, state=IdempotencyRecord.State.IN_PROGRESS)
        .filter(Q(locked_until__lt=now) | claimed_before_restart)
        .update(locked_until=now + CLAIM_TIMEOUT)
    )
    if taken_over:
        existing.refresh_from_db()
        return existing
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
            _store(record=claimed, response=response)
        else:
            transaction.set_rollback(True)
    if not succeeded:
        IdempotencyRecord.objects.filter(pk=claimed.pk).delete()
    return response


def _store(*, record: IdempotencyRecord, response: HttpResponse) -> None:
    render = getattr(response, "render", None)
    if callable(render):
        render()
    headers = {
        name: response[name] for name in _REPLAYED_RESPONSE_HEADERS if response.has_header(name)
    }
    IdempotencyRecord.objects.filter(pk=record.pk).update(
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
