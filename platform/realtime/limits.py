"""Per-connection and per-user limits (issue 18, item 4)."""

from django.conf import settings

# Subscriptions one socket may hold at once; one more is refused with an error message.
MAX_SUBSCRIPTIONS = 20
# An inbound frame larger than this closes the socket with 1009 (message too big).
MAX_MESSAGE_BYTES = 4096
# Inbound messages: a burst of RATE_BURST (room for a reconnect's subscriptions), refilled at
# RATE_PER_SECOND; beyond it 1008.
RATE_BURST = 2 * MAX_SUBSCRIPTIONS
RATE_PER_SECOND = 5.0
# Outbound frames queued for a socket that reads too slowly; one more closes it with 4409.
MAX_OUTBOUND_QUEUE = 1000
# Seconds a socket opened without a bearer subprotocol has to send its ``auth`` message (4408).
AUTH_DEADLINE_SECONDS = 5.0
# Connections per user across processes (realtime.leases): each socket's lease in Redis lasts
# this long unless renewed; its process renews every lease it holds at the shorter interval (two
# renewals may fail before a live socket stops counting). A crashed process's sockets stop
# counting within CONNECTION_LEASE_SECONDS.
CONNECTION_LEASE_SECONDS = 90.0
CONNECTION_LEASE_RENEW_SECONDS = 30.0


def recheck_seconds() -> float:
    """How often an open socket re-checks its user (active, password, device, role) and its
    subscriptions' containers: ``REALTIME_RECHECK_SECONDS`` (default 60)."""
    return float(settings.REALTIME_RECHECK_SECONDS)


def max_connections_per_user() -> int:
    """Open sockets one user (of one tenant) may hold across every real-time process:
    ``REALTIME_MAX_CONNECTIONS_PER_USER`` (default 10); one more is closed with 4429."""
    return int(settings.REALTIME_MAX_CONNECTIONS_PER_USER)
