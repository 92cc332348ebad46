"""The open, authenticated sockets of this process, by (tenant schema, user id).

Two jobs need them: a published authorization change (``apikit.access_events``) re-checks that
user's sockets in that tenant at once, and the connections-per-user limit counts them. The count
is per process (documented in docs/realtime.md): with N real-time pods a user may hold up to N
times the limit, which bounds abuse without a shared counter that a crashed pod would leak.
"""

from __future__ import annotations

from typing import Protocol

from realtime import limits


class Recheckable(Protocol):
    def recheck_soon(self) -> None: ...


_open: dict[tuple[str, str], set[Recheckable]] = {}


def socket_register(*, schema: str, user_id: str, socket: Recheckable) -> bool:
    """Count ``socket`` for its user; False (and not counted) beyond the per-user limit."""
    held = _open.setdefault((schema, user_id), set())
    if len(held) >= limits.max_connections_per_user():
        return False
    held.add(socket)
    return True


def socket_unregister(*, schema: str, user_id: str, socket: Recheckable) -> None:
    held = _open.get((schema, user_id))
    if held is None:
        return
    held.discard(socket)
    if not held:
        del _open[(schema, user_id)]


def user_recheck(*, schema: str, user_id: str) -> int:
    """Ask every socket of ``user_id`` IN ``schema`` to re-check now; how many were asked."""
    held = list(_open.get((schema, user_id), ()))
    for socket in held:
        socket.recheck_soon()
    return len(held)
