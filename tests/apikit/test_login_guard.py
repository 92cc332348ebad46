"""apikit.login_guard against the real Redis: the failure delay and device tokens. The HTTP
behaviour (admin and API) is in tests/security/test_login_guessing.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from apikit import login_guard

SCHEMA = "t_guard"
EMAIL = "someone@example.com"


def _clear() -> None:
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        prefix = django_settings.CACHES["default"]["KEY_PREFIX"]
        keys = list(client.scan_iter(match=f"{prefix}:throttle:{SCHEMA}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _empty() -> Iterator[None]:
    _clear()
    yield
    _clear()


def untrusted() -> login_guard.LoginAttempt:
    return login_guard.login_attempt(schema=SCHEMA, ip="192.0.2.1", email=EMAIL, device_token=None)


def test_failures_are_free_then_delay_twice_as_long_each_time_up_to_the_cap(
    settings: Any,
) -> None:
    settings.LOGIN_FAILURES_BEFORE_DELAY = 3
    settings.LOGIN_FAILURE_DELAY_CAP_SECONDS = 10
    attempt = untrusted()

    delays = [round(login_guard.login_failure_record(attempt=attempt)) for _ in range(9)]

    assert delays == [0, 0, 1, 2, 4, 8, 10, 10, 10]
    verdict = login_guard.login_attempt_check(attempt=attempt)
    assert not verdict.allowed
    assert 9 < verdict.wait_seconds <= 10


def test_the_record_expires_a_day_after_the_last_failure() -> None:
    attempt = untrusted()
    login_guard.login_failure_record(attempt=attempt)
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        ttl = client.pttl(attempt.failures_key)
    finally:
        client.close()
    assert 86_399_000 < ttl <= 86_400_000


def test_a_refused_check_charges_nothing(settings: Any) -> None:
    settings.LOGIN_FAILURES_BEFORE_DELAY = 1
    attempt = untrusted()
    login_guard.login_failure_record(attempt=attempt)  # delays the next attempt by 1 s
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        assert not login_guard.login_attempt_check(attempt=attempt).allowed
        assert client.get(attempt.attempts.key) is None  # the attempts bucket was not charged
    finally:
        client.close()


def test_a_valid_device_token_counts_apart_and_its_success_forgets_its_failures() -> None:
    token = login_guard.device_token_issue(schema=SCHEMA, email=EMAIL)
    device = login_guard.login_attempt(
        schema=SCHEMA, ip="192.0.2.1", email=EMAIL, device_token=token
    )
    assert device.trusted_device
    assert device.failures_key != untrusted().failures_key
    assert device.attempts.key != untrusted().attempts.key

    login_guard.login_failure_record(attempt=device)
    login_guard.login_success_record(attempt=device)
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        assert not client.exists(device.failures_key)
        login_guard.login_failure_record(attempt=untrusted())
        login_guard.login_success_record(attempt=untrusted())
        assert client.exists(untrusted().failures_key)  # an untrusted success resets nothing
    finally:
        client.close()


@pytest.mark.parametrize(
    "kind", ["other_schema", "other_email", "tampered", "expired", "too_long", "none", "not_a_dict"]
)
def test_device_tokens_only_vouch_for_their_schema_and_email(settings: Any, kind: str) -> None:
    from django.core import signing

    token: str | None = login_guard.device_token_issue(schema=SCHEMA, email=EMAIL)
    assert login_guard.device_token_nonce(token=token, schema=SCHEMA, email=EMAIL)
    schema, email = SCHEMA, EMAIL
    if kind == "other_schema":
        schema = "t_other"
    elif kind == "other_email":
        email = "other@example.com"
    elif kind == "tampered":
        assert token is not None
        token = token[:-1] + ("A" if token[-1] != "A" else "B")
    elif kind == "expired":
        settings.LOGIN_DEVICE_TOKEN_DAYS = -1
    elif kind == "too_long":
        token = "x" * 600
    elif kind == "none":
        token = None
    else:
        token = signing.dumps(["a", "list"], salt=login_guard.DEVICE_TOKEN_SALT)

    assert login_guard.device_token_nonce(token=token, schema=schema, email=email) is None
    attempt = login_guard.login_attempt(
        schema=schema, ip="192.0.2.1", email=email, device_token=token
    )
    assert not attempt.trusted_device


def test_unreachable_redis_lets_attempts_through(settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    attempt = untrusted()
    assert login_guard.login_failure_record(attempt=attempt) == 0.0
    assert login_guard.login_attempt_check(attempt=attempt).allowed
    login_guard.login_success_record(attempt=attempt)  # no error either
