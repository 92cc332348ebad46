"""Per-tenant throttles against the real Redis and PostgreSQL.

Note on DRF's order of checks: APIView.initial runs authentication, then permissions, then
throttles. An anonymous request to an IsAuthenticated endpoint (GET auth/me/ without a token)
is therefore answered 401 before any throttle runs, so anonymous tests use the AllowAny auth
endpoints (token/ and token/refresh/), where 401s for bad credentials do count.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient, APIRequestFactory
from rest_framework.views import APIView

from accounts.api.views import TokenObtainView
from accounts.models import User
from apikit import login_guard, throttling
from observability import metrics
from tenants.models import Plan, Tenant
from tenants.routing import get_router, routing_changed
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL, CLINICIAN_ID, TenantWorld, login

ME_URL = "/api/v1/auth/me/"
TOKEN_URL = "/api/v1/auth/token/"
REFRESH_URL = "/api/v1/auth/token/refresh/"
WRONG_PASSWORD = "not-the-password"
ROOMY = {"requests_per_minute": 10_000, "user_burst_per_minute": 10_000}


def _prefix() -> str:
    return str(django_settings.CACHES["default"]["KEY_PREFIX"])


def _redis() -> redis.Redis:
    return redis.Redis.from_url(django_settings.REDIS_URL)


def clear_throttle_keys() -> None:
    """Delete this run's throttle buckets only (the prefix is unique per test run)."""
    client = _redis()
    try:
        keys = list(client.scan_iter(match=f"{_prefix()}:throttle:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _empty_buckets() -> Iterator[None]:
    clear_throttle_keys()
    yield
    clear_throttle_keys()


@pytest.fixture
def login_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behaviour tests of the login bucket must not depend on the one-line wiring in
    accounts (test_login_view_declares_the_login_scope checks that separately)."""
    monkeypatch.setattr(TokenObtainView, "throttle_scope", "login", raising=False)


def give_plan(*worlds: TenantWorld, **numbers: int) -> Plan:
    """Move the tenants to a fresh plan (rolled back with the test) and make routing see it;
    then empty the buckets the logins before it may have charged."""
    plan = Plan.objects.create(name=f"throttle-{uuid.uuid4().hex[:8]}", **numbers)
    Tenant.objects.filter(pk__in=[world.tenant.pk for world in worlds]).update(plan=plan)
    get_router().forget_local()
    clear_throttle_keys()
    return plan


def throttled_body(retry_after: int) -> dict[str, Any]:
    unit = "second" if retry_after == 1 else "seconds"
    return {
        "error": {
            "status": 429,
            "code": "throttled",
            "detail": f"Request was throttled. Expected available in {retry_after} {unit}.",
        }
    }


def statuses(client: APIClient, count: int, url: str = ME_URL) -> list[int]:
    return [client.get(url).status_code for _ in range(count)]


def anon_post(client: APIClient, url: str = REFRESH_URL) -> int:
    return client.post(url, {"refresh": "not-a-token"}, format="json").status_code


def login_attempt(
    world: TenantWorld, *, email: str, password: str = WRONG_PASSWORD, ip: str
) -> int:
    client = APIClient(HTTP_HOST=world.host, REMOTE_ADDR=ip)
    body = {"email": email, "password": password}
    return client.post(TOKEN_URL, body, format="json").status_code


# --- the buckets -------------------------------------------------------------------------------


def test_user_burst_is_refused_with_retry_after_and_the_envelope(alpha: TenantWorld) -> None:
    client = login(alpha, email=CLINICIAN_EMAIL)
    give_plan(alpha, requests_per_minute=10_000, user_burst_per_minute=3)

    assert statuses(client, 3) == [200, 200, 200]
    response = client.get(ME_URL)

    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 20  # one request per 60 / 3 seconds
    assert response.json() == throttled_body(retry_after)


def test_user_sustained_limit_is_per_day(alpha: TenantWorld) -> None:
    client = login(alpha, email=CLINICIAN_EMAIL)
    give_plan(alpha, **ROOMY, user_sustained_per_day=3)

    assert statuses(client, 3) == [200, 200, 200]
    response = client.get(ME_URL)

    assert response.status_code == 429
    assert 86_400 // 3 - 60 <= int(response["Retry-After"]) <= 86_400 // 3


def test_tenant_ceiling_is_shared_by_every_caller_and_staff_are_not_exempt(
    alpha: TenantWorld,
) -> None:
    clinician = login(alpha, email=CLINICIAN_EMAIL)
    admin = login(alpha)  # tenant_admin
    give_plan(alpha, requests_per_minute=3, user_burst_per_minute=100)

    assert [clinician.get(ME_URL).status_code, admin.get(ME_URL).status_code] == [200, 200]
    assert clinician.get(ME_URL).status_code == 200
    assert admin.get(ME_URL).status_code == 429
    assert clinician.get(ME_URL).status_code == 429
    # Anonymous callers have a tenant-wide bucket of their own (issue 21): the ceiling is the
    # signed-in users', and anonymous traffic neither draws on it nor is refused by it.
    assert anon_post(alpha.client()) == 401


def test_anonymous_callers_share_a_tenant_wide_bucket_below_the_ceiling(
    alpha: TenantWorld, settings: Any
) -> None:
    """Each IP under its own limit, many IPs together stop at ANON_TENANT_SHARE_PERCENT of the
    ceiling, and the signed-in users' ceiling is untouched."""
    clinician = login(alpha, email=CLINICIAN_EMAIL)
    settings.ANON_TENANT_SHARE_PERCENT = 20
    give_plan(alpha, requests_per_minute=10, user_burst_per_minute=100)

    from_many_ips = [
        anon_post(APIClient(HTTP_HOST=alpha.host, REMOTE_ADDR=f"198.51.100.{n}")) for n in range(4)
    ]
    assert from_many_ips == [401, 401, 429, 429]  # 20 % of 10 per minute
    assert statuses(clinician, 10) == [200] * 10  # the whole ceiling is still there
    assert clinician.get(ME_URL).status_code == 429


@pytest.mark.parametrize(
    ("ceiling", "percent", "limit"),
    [(1200, 20, 240), (6000, 20, 1200), (30000, 20, 6000), (10, 20, 2), (3, 20, 1), (10, 100, 9)],
)
def test_anonymous_tenant_limit_is_a_share_always_below_the_ceiling(
    settings: Any, ceiling: int, percent: int, limit: int
) -> None:
    settings.ANON_TENANT_SHARE_PERCENT = percent
    plan = Plan(requests_per_minute=ceiling)
    assert throttling.anon_tenant_limit(plan=plan) == limit


def test_one_tenant_exhausting_its_limits_never_slows_another(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    """The clinician has the same id in both tenants: user and tenant buckets must not collide."""
    alpha_client = login(alpha, email=CLINICIAN_EMAIL)
    alpha_admin = login(alpha)
    beta_client = login(beta, email=CLINICIAN_EMAIL)
    give_plan(alpha, beta, requests_per_minute=4, user_burst_per_minute=3)

    assert statuses(alpha_client, 4) == [200, 200, 200, 429]  # user burst
    # The refused 4th did not charge the ceiling: one request left, then the ceiling refuses.
    assert statuses(alpha_admin, 2) == [200, 429]

    assert statuses(beta_client, 4) == [200, 200, 200, 429]
    prefix = _prefix()
    assert (
        _redis().exists(
            f"{prefix}:throttle:t_alpha:user-burst:{CLINICIAN_ID}",
            f"{prefix}:throttle:t_beta:user-burst:{CLINICIAN_ID}",
            f"{prefix}:throttle:t_alpha:tenant",
            f"{prefix}:throttle:t_beta:tenant",
        )
        == 4
    )


def test_anonymous_limit_is_per_ip_and_per_tenant(
    alpha: TenantWorld, beta: TenantWorld, settings: Any
) -> None:
    settings.ANON_REQUESTS_PER_MINUTE = 3
    first_ip = APIClient(HTTP_HOST=alpha.host, REMOTE_ADDR="203.0.113.7")

    assert [anon_post(first_ip) for _ in range(4)] == [401, 401, 401, 429]
    assert anon_post(APIClient(HTTP_HOST=beta.host, REMOTE_ADDR="203.0.113.7")) == 401
    assert anon_post(APIClient(HTTP_HOST=alpha.host, REMOTE_ADDR="203.0.113.8")) == 401
    # Authentication and permission run before throttles in DRF: no token is a 401, not a 429.
    assert first_ip.get(ME_URL).status_code == 401


def test_anonymous_ip_is_the_one_the_trusted_proxy_reports(
    alpha: TenantWorld, settings: Any
) -> None:
    settings.ANON_REQUESTS_PER_MINUTE = 1
    settings.TRUSTED_PROXY_COUNT = 1

    def via_proxy(forwarded_for: str) -> int:
        client = APIClient(HTTP_HOST=alpha.host, HTTP_X_FORWARDED_FOR=forwarded_for)
        return anon_post(client)

    assert [via_proxy("198.51.100.1"), via_proxy("198.51.100.1")] == [401, 429]
    assert via_proxy("198.51.100.2") == 401
    assert via_proxy("spoofed, 198.51.100.1") == 429  # client-supplied entries are ignored


# --- login -----------------------------------------------------------------------------------------


def test_login_view_declares_the_login_scope() -> None:
    assert getattr(TokenObtainView, "throttle_scope", None) == throttling.LOGIN_SCOPE


@pytest.mark.usefixtures("login_scope")
def test_login_throttle_is_keyed_by_tenant_ip_and_email(
    alpha: TenantWorld, beta: TenantWorld, settings: Any
) -> None:
    settings.LOGIN_ATTEMPTS_PER_15_MINUTES = 2
    ip = "192.0.2.10"

    assert [login_attempt(alpha, email=CLINICIAN_EMAIL, ip=ip) for _ in range(2)] == [401, 401]
    response = APIClient(HTTP_HOST=alpha.host, REMOTE_ADDR=ip).post(
        TOKEN_URL, {"email": CLINICIAN_EMAIL, "password": alpha.password}, format="json"
    )
    assert response.status_code == 429  # even the right password: attempts are what count
    assert 1 <= int(response["Retry-After"]) <= 450
    assert login_attempt(alpha, email="  Clinician@EXAMPLE.com ", ip=ip) == 429  # normalised

    assert login_attempt(alpha, email=ADMIN_EMAIL, ip=ip) == 401  # another email
    assert login_attempt(alpha, email=CLINICIAN_EMAIL, ip="192.0.2.11") == 401  # another IP
    assert login_attempt(beta, email=CLINICIAN_EMAIL, ip=ip) == 401  # another tenant


@pytest.mark.usefixtures("login_scope")
def test_unreadable_login_bodies_are_counted_and_keep_their_own_errors(
    alpha: TenantWorld, settings: Any
) -> None:
    """Bodies without an email (malformed JSON, a list) share the email "" bucket; the first
    still answers the parse error the contract promises, not a validation error."""
    settings.LOGIN_ATTEMPTS_PER_15_MINUTES = 2
    client = APIClient(HTTP_HOST=alpha.host)

    malformed = client.post(TOKEN_URL, data="{", content_type="application/json")
    assert malformed.status_code == 400
    assert malformed.json()["error"]["code"] == "parse_error"
    assert client.post(TOKEN_URL, [1, 2], format="json").status_code == 400
    assert client.post(TOKEN_URL, data="{", content_type="application/json").status_code == 429
    assert client.post(TOKEN_URL, {"password": "x"}, format="json").status_code == 429


# --- semantics -----------------------------------------------------------------------------------


def test_a_refused_request_consumes_nothing(alpha: TenantWorld) -> None:
    clinician = login(alpha, email=CLINICIAN_EMAIL)
    admin = login(alpha)
    give_plan(alpha, requests_per_minute=3, user_burst_per_minute=2)
    tenant_key = f"{_prefix()}:throttle:t_alpha:tenant"

    assert statuses(clinician, 2) == [200, 200]
    charged = _redis().get(tenant_key)
    assert statuses(clinician, 5) == [429] * 5  # refused by the user burst...
    assert _redis().get(tenant_key) == charged  # ...without charging the tenant ceiling

    assert statuses(admin, 2) == [200, 429]  # exactly the one request the ceiling had left


def test_superusers_are_exempt(alpha: TenantWorld) -> None:
    client = login(alpha, email=CLINICIAN_EMAIL)
    with tenant_context(alpha.tenant):
        User.objects.filter(pk=CLINICIAN_ID).update(is_superuser=True)
    give_plan(alpha, requests_per_minute=2, user_burst_per_minute=2, user_sustained_per_day=2)

    assert statuses(client, 6) == [200] * 6


def test_public_host_is_exempt_and_never_reaches_redis(redis_calls: list[str]) -> None:
    request = APIRequestFactory().get("/admin/")
    request.tenant = None  # type: ignore[attr-defined]  # what routing sets on the public host
    view = APIView()
    drf_request = view.initialize_request(request)

    assert throttling.TenantRateThrottle().allow_request(drf_request, view) is True
    assert redis_calls == []


def test_plan_changes_apply_without_a_restart(alpha: TenantWorld) -> None:
    """The process keeps serving; only the plan row changes and routing is told (as the
    operator admin does). Buckets are emptied between steps so each step starts fresh."""
    client = login(alpha, email=CLINICIAN_EMAIL)
    plan = give_plan(alpha, requests_per_minute=10_000, user_burst_per_minute=2)
    assert statuses(client, 3) == [200, 200, 429]

    Plan.objects.filter(pk=plan.pk).update(user_burst_per_minute=4)
    routing_changed()
    clear_throttle_keys()
    assert statuses(client, 5) == [200, 200, 200, 200, 429]

    Plan.objects.filter(pk=plan.pk).update(user_burst_per_minute=1)
    routing_changed()
    clear_throttle_keys()
    assert statuses(client, 2) == [200, 429]


# --- Redis -------------------------------------------------------------------------------------------


@pytest.fixture
def redis_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the commands the throttle sends, through a real connection to the real Redis
    (a subclass that only records), plus "<reply>" for every reply it reads."""
    calls: list[str] = []

    class RecordingConnection(redis.Connection):
        def send_command(self, *args: Any, **kwargs: Any) -> None:
            calls.append(str(args[0]).upper())
            super().send_command(*args, **kwargs)

        def read_response(self, *args: Any, **kwargs: Any) -> Any:
            calls.append("<reply>")
            return super().read_response(*args, **kwargs)

    def connect(*, url: str) -> redis.Redis:
        pool = redis.ConnectionPool.from_url(
            url,
            connection_class=RecordingConnection,
            socket_timeout=throttling.REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=throttling.REDIS_TIMEOUT_SECONDS,
        )
        return redis.Redis(connection_pool=pool)

    monkeypatch.setattr(throttling, "_connect", connect)
    monkeypatch.setattr(throttling, "_handle", None)
    return calls


@pytest.mark.usefixtures("login_scope")
def test_every_scope_is_checked_in_one_redis_round_trip(
    alpha: TenantWorld, redis_calls: list[str]
) -> None:
    client = login(alpha, email=CLINICIAN_EMAIL)  # connects and loads the script
    redis_calls.clear()

    assert client.get(ME_URL).status_code == 200  # user burst + sustained + tenant
    assert redis_calls == ["EVALSHA", "<reply>"]

    redis_calls.clear()
    # anon + anon-tenant + login attempts, and the email's failure delay: one round trip; the
    # failure it turns out to be is written after the password check, with one more.
    assert login_attempt(alpha, email=CLINICIAN_EMAIL, ip="192.0.2.20") == 401
    assert redis_calls == ["EVALSHA", "<reply>", "EVALSHA", "<reply>"]


def test_unreachable_redis_serves_requests_logs_and_counts(
    alpha: TenantWorld, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    client = login(alpha, email=CLINICIAN_EMAIL)
    reachable_url = settings.REDIS_URL
    failures_before = metrics.value(throttling.REDIS_FAILURE_COUNTER)
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there

    with caplog.at_level(logging.INFO, logger="apikit.throttling"):
        assert statuses(client, 3) == [200, 200, 200]
        settings.REDIS_URL = reachable_url
        assert client.get(ME_URL).status_code == 200

    assert metrics.value(throttling.REDIS_FAILURE_COUNTER) == failures_before + 3
    records = [r for r in caplog.records if r.name == "apikit.throttling"]
    # One warning per outage, not per request; then a note that throttles apply again.
    assert [r.levelno for r in records] == [logging.WARNING, logging.INFO]
    assert "Redis unreachable" in records[0].getMessage()


# --- keys --------------------------------------------------------------------------------------------


def test_bucket_keys_carry_the_prefix_the_schema_and_the_caller(settings: Any) -> None:
    settings.ANON_TENANT_SHARE_PERCENT = 20
    plan = Plan(requests_per_minute=100, user_burst_per_minute=10, user_sustained_per_day=1000)
    user = throttling.request_buckets(
        key_prefix="p", schema="t_x", plan=plan, user_id="u1", ip="192.0.2.1"
    )
    assert [(b.key, b.limit, b.period_seconds) for b in user] == [
        ("p:throttle:t_x:user-burst:u1", 10, 60),
        ("p:throttle:t_x:user-sustained:u1", 1000, 86_400),
        ("p:throttle:t_x:tenant", 100, 60),
    ]

    anon = throttling.request_buckets(
        key_prefix="p", schema="t_x", plan=plan, user_id=None, ip="192.0.2.1"
    )
    assert [(b.key, b.limit, b.period_seconds) for b in anon] == [
        ("p:throttle:t_x:anon:192.0.2.1", settings.ANON_REQUESTS_PER_MINUTE, 60),
        ("p:throttle:t_x:anon-tenant", 20, 60),
    ]

    attempt = login_guard.login_attempt(
        schema="t_x", ip="192.0.2.1", email="a@b.c", device_token=None
    )
    assert attempt.attempts.key.startswith(f"{_prefix()}:throttle:t_x:login:192.0.2.1:")
    assert attempt.failures_key.startswith(f"{_prefix()}:throttle:t_x:login-failures:")
    assert "a@b.c" not in attempt.attempts.key + attempt.failures_key  # hashed: no addresses
    assert (attempt.attempts.limit, attempt.attempts.period_seconds) == (10, 900)
    assert not attempt.trusted_device


@pytest.mark.parametrize(
    ("data", "email"),
    [
        ({"email": "  Someone@Example.COM "}, "someone@example.com"),
        ({"email": 42}, ""),
        ({"password": "x"}, ""),
        (["email"], ""),
        ("email", ""),
    ],
)
def test_login_email_from_the_body(data: object, email: str) -> None:
    assert throttling.login_email(data=data) == email
