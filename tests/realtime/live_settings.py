"""The live uvicorn's settings: the hardening suites' live settings. The periodic re-check stays
at its production minute, so tests/realtime/test_live_authorization.py proves that the published
change (apikit.access_events), not the sweep, ends a socket within 5 s; a small per-user connection
limit keeps the limit's test short."""

from tests.security.live_settings import *  # noqa: F403

REALTIME_RECHECK_SECONDS = 60
REALTIME_MAX_CONNECTIONS_PER_USER = 3
