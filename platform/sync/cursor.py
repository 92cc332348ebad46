"""The pull cursor: opaque to clients, signed per tenant, built on an xid8 watermark.

Contract (part B returns ``cursor_current`` after a push):

- ``cursor_current(*, user, tables=None) -> str``: a fresh signed cursor whose low watermark is
  the current commit-safe watermark (``WATERMARK_SQL``: the oldest transaction of this database
  still running), for ``user``'s current scope and ``tables`` (default: every table the user may
  sync). Call it *after* the push transaction committed (``transaction.on_commit`` or after the
  atomic block): inside the transaction the watermark is at most the push's own transaction id,
  so the next pull would re-send the pushed rows (harmless, only wasteful). Note: a client that replaces its cursor with
  this one skips changes by *other* writers between its last pull and now; see docs/sync-internals.md.
- ``cursor_decode(raw, *, schema=None) -> Cursor``: verify and parse; ``CursorInvalidError`` (400
  ``cursor_invalid``) for a malformed, tampered or other-tenant cursor.
- ``cursor_encode(cursor, *, schema=None) -> str``.

Wire form: ``base64url(JSON) "." base64url(HMAC-SHA256)``, the key derived from
``SYNC_CURSOR_KEY`` (default ``SECRET_KEY``) and the tenant's schema, so a cursor of tenant B
never verifies on tenant A. Payload: ``{"v": 1, "t": schema, "lo": int, "hi": int|null,
"after": [txid, seq]|null, "scope": "<hash>", "rep": bool, "sv": schema_version}``, plus, only
while a scope change or a local migration is being delivered (docs/sync-internals.md, "Scope changes"):
``"held"`` / ``"have"`` (scope digests the device may hold rows of / fully holds), ``"full"``
(tables to send in full) and ``"rs"`` (the position in that resend: table, kind, last id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from django.conf import settings
from django.db import connection

from apikit.errors import APIError
from apikit.tenancy import current_schema_name

CURSOR_VERSION = 1
# A device whose scope changes again while a change is delivered keeps a list of the scopes it
# may hold rows of; past this many the cursor is refused as expired (a full re-sync).
MAX_SCOPE_HISTORY = 8
# The sync wire schema (table / column whitelist). Bump when a synced table changes shape.
SCHEMA_VERSION = 1
MAX_CURSOR_LENGTH = 2048
CURSOR_INVALID_DETAIL = (
    "The sync cursor is malformed, was altered, or belongs to another organisation. "
    "Pull again without a cursor."
)


class CursorInvalidError(APIError):
    def __init__(self) -> None:
        super().__init__(status=400, code="cursor_invalid", detail=CURSOR_INVALID_DETAIL)


@dataclass(frozen=True)
class Cursor:
    lo: int
    hi: int | None
    after: tuple[int, int] | None
    scope: str
    replacement: bool = False
    schema_version: int = SCHEMA_VERSION
    # While a scope change is delivered: the scopes (digests) whose rows the device may hold,
    # and those whose rows it holds completely; empty otherwise (both are ``scope``).
    held: tuple[str, ...] = ()
    have: tuple[str, ...] = ()
    # Tables sent in full (a local migration added them or their columns).
    full: tuple[str, ...] = ()
    # Position in the resend of a scope change: (table index, 0 lost ids / 1 gained rows, last
    # id); None once the resend is done (the run continues with the change log).
    resend: tuple[int, int, str] | None = None

    @property
    def paging(self) -> bool:
        """True while a paging run is in progress (``hi`` fixed)."""
        return self.hi is not None

    @property
    def in_transition(self) -> bool:
        return bool(self.held) or bool(self.full)


def _key(schema: str) -> bytes:
    secret = getattr(settings, "SYNC_CURSOR_KEY", "") or settings.SECRET_KEY
    return hashlib.sha256(f"verdant-sync-cursor\x00{secret}\x00{schema}".encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def cursor_encode(cursor: Cursor, *, schema: str | None = None) -> str:
    schema = schema or current_schema_name()
    payload = orjson.dumps(
        {
            "v": CURSOR_VERSION,
            "t": schema,
            "lo": cursor.lo,
            "hi": cursor.hi,
            "after": list(cursor.after) if cursor.after else None,
            "scope": cursor.scope,
            "rep": cursor.replacement,
            "sv": cursor.schema_version,
            **(
                {
                    "held": list(cursor.held),
                    "have": list(cursor.have),
                    "full": list(cursor.full),
                    "rs": list(cursor.resend) if cursor.resend else None,
                }
                if cursor.in_transition
                else {}
            ),
        }
    )
    signature = hmac.new(_key(schema), payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(signature)}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def cursor_decode(raw: str, *, schema: str | None = None) -> Cursor:
    schema = schema or current_schema_name()
    if not isinstance(raw, str) or len(raw) > MAX_CURSOR_LENGTH or raw.count(".") != 1:
        raise CursorInvalidError()
    encoded_payload, encoded_signature = raw.split(".")
    try:
        payload = _unb64(encoded_payload)
        signature = _unb64(encoded_signature)
    except (binascii.Error, ValueError):
        raise CursorInvalidError() from None
    expected = hmac.new(_key(schema), payload, hashlib.sha256).digest()
    if not hmac.compare_digest(signature, expected):
        raise CursorInvalidError()
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise CursorInvalidError() from None
    if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION or data.get("t") != schema:
        raise CursorInvalidError()
    lo, hi, after = data.get("lo"), data.get("hi"), data.get("after")
    scope, replacement, schema_version = data.get("scope"), data.get("rep"), data.get("sv")
    if not _is_int(lo) or not (hi is None or _is_int(hi)) or not isinstance(scope, str):
        raise CursorInvalidError()
    if after is not None and not (
        isinstance(after, list) and len(after) == 2 and all(_is_int(v) for v in after)
    ):
        raise CursorInvalidError()
    if not isinstance(replacement, bool) or not _is_int(schema_version):
        raise CursorInvalidError()
    held, have, full = data.get("held", []), data.get("have", []), data.get("full", [])
    resend = data.get("rs")
    if not all(_is_str_list(value) for value in (held, have, full)):
        raise CursorInvalidError()
    if resend is not None and not (
        isinstance(resend, list)
        and len(resend) == 3
        and _is_int(resend[0])
        and resend[1] in (0, 1)
        and isinstance(resend[2], str)
    ):
        raise CursorInvalidError()
    return Cursor(
        lo=int(lo),  # type: ignore[arg-type]
        hi=hi,
        after=(after[0], after[1]) if after else None,
        scope=scope,
        replacement=replacement,
        schema_version=int(schema_version),  # type: ignore[arg-type]
        held=tuple(held),
        have=tuple(have),
        full=tuple(full),
        resend=(int(resend[0]), int(resend[1]), str(resend[2])) if resend else None,
    )


def _is_str_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) <= MAX_SCOPE_HISTORY * 2
        and all(isinstance(item, str) for item in value)
    )


# The smallest transaction id still running IN THIS DATABASE when the snapshot was taken, else the
# snapshot's xmax. ``pg_snapshot_xmin`` alone is cluster-wide: a long transaction in another
# database on the same server (a migration, a ``CREATE DATABASE``, a report) would hold every
# tenant's events and pulls back until it ends, though it can never write here. An in-progress
# id counts as another database's only when a live backend or prepared transaction of another
# database holds it now; anything unproven (finished since the snapshot, or hidden from this
# role) keeps blocking, so the rule only ever errs towards waiting. The own transaction is never
# in its own snapshot's xip, but the snapshot's xmax can be the own id (the newest assigned, none
# later completed): its changes are visible to it (a push computing its cursor inside its
# transaction, a test running in one), so the watermark then moves one past it.
WATERMARK_SQL = """
WITH snap AS (SELECT pg_current_snapshot() AS s),
elsewhere AS (
    SELECT a.backend_xid::text::bigint AS xid32
      FROM pg_stat_activity AS a
     WHERE a.backend_xid IS NOT NULL
       AND a.datid <> (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL
    SELECT p.transaction::text::bigint
      FROM pg_prepared_xacts AS p
     WHERE p.database <> current_database()
)
SELECT CASE WHEN w = pg_current_xact_id_if_assigned()::text::bigint THEN w + 1 ELSE w END
  FROM (
    SELECT least(
             (SELECT min(x::text::bigint)
                FROM pg_snapshot_xip(snap.s) AS x
               WHERE x::text::bigint % 4294967296 NOT IN (SELECT xid32 FROM elsewhere)),
             pg_snapshot_xmax(snap.s)::text::bigint) AS w
      FROM snap
  ) AS watermark
"""


def watermark_now() -> int:
    """The commit-safe watermark: every transaction of this database with an id below it has
    finished, and the current snapshot sees all of them (see ``WATERMARK_SQL``)."""
    with connection.cursor() as cursor:
        cursor.execute(WATERMARK_SQL)
        row = cursor.fetchone()
    return int(row[0])


def cursor_current(*, user: Any, tables: Iterable[str] | None = None) -> str:
    """A fresh cursor at the current watermark for ``user``'s scope (see module docstring)."""
    from sync.selectors import sync_scope, tables_for_user

    selected = tables_for_user(user=user, requested=list(tables) if tables is not None else None)
    scope = sync_scope(user=user, tables=selected)
    return cursor_encode(Cursor(lo=watermark_now(), hi=None, after=None, scope=scope.digest))


_OTHERS_CHANGED_BETWEEN = """
SELECT EXISTS (
    SELECT 1 FROM sync_change
     WHERE txid >= %s::text::xid8 AND txid < %s::text::xid8 AND txid <> pg_current_xact_id()
)
"""


def cursor_after_push(*, user: Any, since: str | None) -> str | None:
    """The cursor a push answers with, from the client's last pull cursor ``since``.

    A fresh cursor (``cursor_current``) already covers the push's own rows, so the next pull does
    not download them again, but adopting it would also skip what *other* writers committed after
    ``since``. So the fresh cursor is given only when the change log holds nothing since ``since``
    but this transaction's own entries (and the scope is unchanged, or the replacement a scope
    change calls for would be skipped); otherwise ``since`` comes back as it was, and the next
    pull re-sends the pushed rows with everything else. Without ``since`` nothing is known of what
    the client has seen: ``None``. Runs inside the push's transaction. Transactions still running
    have ids at or above the watermark, so they are never skipped either.
    """
    if since is None:
        return None
    previous = cursor_decode(since)
    if previous.paging or previous.replacement:
        return since
    from sync.selectors import sync_scope, tables_for_user

    scope = sync_scope(user=user, tables=tables_for_user(user=user, requested=None))
    if scope.digest != previous.scope:
        return since
    # The watermark first: every transaction below it has finished, so the check after it (a
    # later snapshot) sees all of their entries; one still running when the check ran could
    # otherwise commit before a watermark read second and be skipped.
    watermark = watermark_now()
    with connection.cursor() as cursor:
        cursor.execute(_OTHERS_CHANGED_BETWEEN, [str(previous.lo), str(watermark)])
        row = cursor.fetchone()
    if row is not None and row[0]:
        return since
    return cursor_encode(Cursor(lo=watermark, hi=None, after=None, scope=scope.digest))
