"""The live uvicorn's settings: the hardening suites' live settings, re-checking open sockets'
authorization every second instead of every minute (tests/realtime/test_live_authorization.py)."""

from tests.security.live_settings import *  # noqa: F403

REALTIME_RECHECK_SECONDS = 1
