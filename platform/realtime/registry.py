"""Subscription kinds: what a client may subscribe to, registered by the apps that own the data.

This package imports no domain app (an import-linter contract); clinical registers
``appointments`` from its ``AppConfig.ready()`` (clinical/realtime.py), as it registers its sync
tables with ``sync.registry``. A kind is four functions:

- ``open(*, user, identity, params) -> state`` (sync, in the tenant's schema): validates ``params``
  (``SubscriptionError`` for bad input), checks the user may see the container (``RefusedError`` 4404
  otherwise), and returns the subscription's in-memory state (what it will filter on).
- ``tables``: the change-log tables (``sync_change.tbl``) the kind reads (None: all).
- ``load(*, entries, roles) -> batch`` (sync, in the tenant's schema): ONE read for a batch of
  change-log entries, whatever the number of sockets (no per-event query per connection);
  ``roles``: the roles among the subscribers, for role projections rendered once per role.
- ``match(state, batch, entries, *, role, resumed) -> list[(event id, message)]`` (pure, no
  I/O): the messages for one subscription; may update ``state``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple


class Entry(NamedTuple):
    """One change-log row: ``sync_change`` (txid, seq, tbl, row_id, op, scope_ids)."""

    txid: int
    seq: int
    tbl: str
    row_id: str
    op: str
    scope_ids: tuple[str, ...]

    @property
    def event_id(self) -> str:
        return f"{self.txid}:{self.seq}"


class SubscriptionError(Exception):
    """Bad subscription parameters: answered with an ``error`` message, the socket stays."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


OpenFn = Callable[..., Any]
LoadFn = Callable[..., Any]
MatchFn = Callable[..., list[tuple[str, dict[str, Any]]]]


@dataclass(frozen=True)
class SubscriptionKind:
    name: str
    # None: every table of the change log.
    tables: frozenset[str] | None
    open: OpenFn
    load: LoadFn
    match: MatchFn
    # ``recheck(*, user, identity, params) -> None`` (sync, in the tenant's schema): what a
    # re-check (published change or sweep) runs for a kind whose state is kept (a board's memory
    # of the rows it holds): access alone, ``RefusedError`` when withdrawn, without reading the
    # state again. None: the re-check calls ``open`` and the subscription takes the fresh state
    # (a scope that follows grants).
    recheck: Callable[..., None] | None = None
    # ``relevant(state, entry) -> bool`` (pure): False for an entry ``match`` would ignore for
    # this subscription. A resume's catch-up, which loads for one subscription alone, drops such
    # entries before ``load`` (a board loads its facility's rows, not the whole tenant's).
    relevant: Callable[[Any, Entry], bool] | None = None


_kinds: dict[str, SubscriptionKind] = {}


def register_kind(kind: SubscriptionKind) -> None:
    _kinds[kind.name] = kind


def subscription_kind(name: str) -> SubscriptionKind | None:
    return _kinds.get(name)


def subscription_kinds() -> Sequence[SubscriptionKind]:
    return list(_kinds.values())
