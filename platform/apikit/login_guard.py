"""Password guessing limits shared by every login: the API's token endpoint, both Django admin
login pages and the admin's password-change form (its old-password check).

An attempt is charged to two things, keyed by the schema (``public`` on the operators' host):

* **attempts** — a rate bucket (GCRA, apikit.throttling) charged before the password is checked:
  LOGIN_ATTEMPTS_PER_15_MINUTES per client IP + email. It only slows one address guessing at
  one account; a victim elsewhere never feels it.
* **failures** — a record per email, for any email, existing or not (so it cannot tell which
  exist), that counts failed checks only. The first LOGIN_FAILURES_BEFORE_DELAY are free; past
  them each failure makes the next attempt wait 2, 4, 8 … seconds (1 s after the last free one),
  never more than LOGIN_FAILURE_DELAY_CAP_SECONDS. It is a delay, never a lock: once it has passed
  one more attempt is checked, so guesses from any number of addresses end up at one per
  15 minutes per account, and the record is forgotten a day after its latest failure. It is
  checked before the password (a refused attempt costs nothing and reveals nothing) and written
  after.

A **device token** (OWASP's "device cookie") is handed out at every successful login: a value
signed with SECRET_KEY naming the schema, the email (hashed) and a random nonce, valid for
LOGIN_DEVICE_TOKEN_DAYS. The admin keeps it in a cookie; API clients get it as ``device_token``
and send it back with their next login. An attempt carrying a valid token for the same schema and
email is counted apart: attempts and failures per device instead of per IP + email and per email.
So however many guesses an attacker makes at an account, its owner's browser or app still logs in
at once; and a stolen token is only a separate allowance of the same size. A token that does not
verify, has expired or names another account is ignored (the attempt is counted as untrusted).

A successful login from a trusted device forgets that device's failures; an untrusted success
does not reset the per-email record (its owner's next typo should not buy an attacker ten more
free guesses), which only ages out.

Every check is one Redis round trip (with the request's other buckets, for the API); recording a
failure is one more. Redis being down lets attempts through, like every throttle.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.core import signing

from apikit.throttling import (
    LOGIN_FAILURE_SCRIPT,
    LOGIN_PERIOD_SECONDS,
    Bucket,
    Verdict,
    buckets_check_or_allow,
    email_digest,
    key_prefix,
    redis_client,
    redis_failed,
    redis_script,
)

DEVICE_TOKEN_SALT = "verdant.login-device"  # noqa: S105  (a salt name, not a secret)
# The body field of the API's login request and response.
DEVICE_TOKEN_FIELD = "device_token"  # noqa: S105  (a field name)
DEVICE_TOKEN_MAX_LENGTH = 512
# A failure record is forgotten this long after its latest failure.
FAILURE_MEMORY_SECONDS = 86_400
_MICROSECONDS = 1_000_000


@dataclass(frozen=True)
class LoginAttempt:
    """Where one login attempt is counted."""

    attempts: Bucket
    failures_key: str
    trusted_device: bool


def login_attempt(*, schema: str, ip: str, email: str, device_token: str | None) -> LoginAttempt:
    """The buckets of an attempt at ``email`` (normalised) from ``ip``: the device's own when
    ``device_token`` is a valid token of this schema and email, else per IP + email and email."""
    base = f"{key_prefix()}:throttle:{schema}"
    nonce = device_token_nonce(token=device_token, schema=schema, email=email)
    limit = int(settings.LOGIN_ATTEMPTS_PER_15_MINUTES)
    if nonce is not None:
        return LoginAttempt(
            attempts=Bucket(
                key=f"{base}:login-device:{nonce}",
                limit=limit,
                period_seconds=LOGIN_PERIOD_SECONDS,
            ),
            failures_key=f"{base}:login-device-failures:{nonce}",
            trusted_device=True,
        )
    digest = email_digest(email=email)
    return LoginAttempt(
        attempts=Bucket(
            key=f"{base}:login:{ip}:{digest}", limit=limit, period_seconds=LOGIN_PERIOD_SECONDS
        ),
        failures_key=f"{base}:login-failures:{digest}",
        trusted_device=False,
    )


def login_attempt_check(*, attempt: LoginAttempt, buckets: Sequence[Bucket] = ()) -> Verdict:
    """Charge the attempt (and ``buckets``) unless a bucket is empty or a failure delay runs."""
    return buckets_check_or_allow(
        buckets=[*buckets, attempt.attempts], delay_keys=[attempt.failures_key]
    )


def login_failure_record(*, attempt: LoginAttempt) -> float:
    """Count a failed password check; returns the delay (seconds) it imposes on the next one."""
    script = redis_script(name=LOGIN_FAILURE_SCRIPT)
    try:
        delay_us = script(
            keys=[attempt.failures_key],
            args=[
                int(settings.LOGIN_FAILURES_BEFORE_DELAY),
                int(settings.LOGIN_FAILURE_DELAY_CAP_SECONDS) * _MICROSECONDS,
                FAILURE_MEMORY_SECONDS * 1000,
            ],
        )
    except redis.RedisError as error:
        redis_failed(error=error)
        return 0.0
    return int(delay_us) / _MICROSECONDS


def login_success_record(*, attempt: LoginAttempt) -> None:
    """A trusted device that logged in starts again with no failures."""
    if not attempt.trusted_device:
        return
    try:
        redis_client().delete(attempt.failures_key)
    except redis.RedisError as error:
        redis_failed(error=error)


# --- device tokens -----------------------------------------------------------------------------


def device_token_issue(*, schema: str, email: str) -> str:
    """A new device token for ``email`` (normalised) on ``schema``'s host."""
    payload = {"s": schema, "e": email_digest(email=email), "n": secrets.token_urlsafe(16)}
    return signing.dumps(payload, salt=DEVICE_TOKEN_SALT, compress=False)


def device_token_nonce(*, token: str | None, schema: str, email: str) -> str | None:
    """The nonce of a valid, unexpired device token of ``schema`` and ``email``, else None."""
    if not token or len(token) > DEVICE_TOKEN_MAX_LENGTH:
        return None
    try:
        payload: Any = signing.loads(
            token,
            salt=DEVICE_TOKEN_SALT,
            max_age=int(settings.LOGIN_DEVICE_TOKEN_DAYS) * 86_400,
        )
    except signing.BadSignature:  # SignatureExpired is one
        return None
    if not isinstance(payload, Mapping):
        return None
    nonce = payload.get("n")
    if (
        payload.get("s") != schema
        or payload.get("e") != email_digest(email=email)
        or not isinstance(nonce, str)
        or not nonce.replace("-", "").replace("_", "").isalnum()
    ):
        return None
    return nonce


def login_device_token(*, data: object) -> str | None:
    """The device token a login body carries, if any."""
    if not isinstance(data, Mapping):
        return None
    token = data.get(DEVICE_TOKEN_FIELD)
    return token if isinstance(token, str) else None
