"""Issue 21, item 1: password guessing at the Django admin (tenant hosts and the operators' host)
and at the API's login is throttled, audited and cannot be turned against the account's owner.

Driven over HTTP like a browser (tests/security/admin_http.py: session, CSRF token from the page,
form posts) on tenant A of the committed world, and on the public host with an operator created
in the test's transaction; the last test runs against a real gunicorn (tests/security/live.py).

Before the fix (checked by stashing it): the admin answered every wrong password with the login
page and 200, let the 16th (right) one in and wrote no audit event; the API refused the 11th
attempt per IP + email only, so three IPs made 30 guesses and a fourth logged in.
"""

from __future__ import annotations

import re
import statistics
import uuid
from collections.abc import Iterator

import pytest
import redis
import requests
from django.conf import settings
from django.http import HttpResponse
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from accounts.admin_site import device_cookie_name
from accounts.models import User
from apikit.login_guard import login_attempt
from audit.models import AuditEvent
from audit.public.models import PublicAuditEvent
from tests.security.admin_http import (
    INVALID_LOGIN_TEXT,
    THROTTLED_TEXT,
    AdminBrowser,
    form_errors,
    page,
    retry_after,
)
from tests.security.conftest import SecurityWorld
from tests.security.live import LiveServer, live_gunicorn
from tests.security.world import ADMIN_EMAIL, email_for

pytestmark = pytest.mark.security

TOKEN_URL = "/api/v1/auth/token/"
WRONG = "Wrong-Guess-123"
OPERATOR_EMAIL = "ops-guard@verdant.example"
OPERATOR_PASSWORD = "Ops-Guard-Password-77"
PUBLIC_HOST = "verdant.test"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL)


def let_the_delay_pass(*, schema: str, email: str) -> None:
    """Fast-forward the clock of one email's failure record: its delay has passed (the count of
    failures stays). What an attacker gets by waiting, without waiting."""
    key = login_attempt(schema=schema, ip="", email=email, device_token=None).failures_key
    client = _redis()
    try:
        if client.exists(key):
            client.hset(key, "at", 0)
    finally:
        client.close()


def failures_recorded(*, schema: str, email: str) -> int:
    key = login_attempt(schema=schema, ip="", email=email, device_token=None).failures_key
    client = _redis()
    try:
        return int(client.hget(key, "n") or 0)
    finally:
        client.close()


def ip(n: int) -> str:
    return f"198.51.100.{n % 250 + 1}"


def admin_guesses(sw: SecurityWorld, *, count: int, first_ip: str | None = None) -> None:
    """``count`` wrong admin passwords from rotating addresses (the first five from ``first_ip``
    when given), waiting out every delay: a patient attacker. 15 guesses leave the untrusted
    record at a 32 s delay."""
    for n in range(count):
        let_the_delay_pass(schema=sw.a.schema, email=ADMIN_EMAIL)
        address = first_ip if first_ip is not None and n < 5 else ip(n)
        response = AdminBrowser(host=sw.a.host, ip=address).login(ADMIN_EMAIL, WRONG)
        assert response.status_code == 200


def tenant_events(schema: str, *, email: str, action: str) -> int:
    with schema_context(schema):
        return AuditEvent.objects.filter(actor_email=email, action=action).count()


@pytest.fixture
def operator(sw: SecurityWorld) -> Iterator[User]:
    with schema_context("public"):
        yield User.objects.create_superuser(OPERATOR_EMAIL, OPERATOR_PASSWORD)


# --- the tenant admin ------------------------------------------------------------------------------


def test_fifteen_wrong_admin_passwords_then_429_with_retry_after(sw: SecurityWorld) -> None:
    """From one address: ten wrong passwords answer the login page, the next ones (and then the
    right password too) the login page with 429 and Retry-After; each checked password is a
    ``login_failed`` event, and the right one after the wait is a ``login``."""
    browser = AdminBrowser(host=sw.a.host, ip="203.0.113.15")

    answers = [browser.login(ADMIN_EMAIL, WRONG) for _ in range(15)]

    assert [r.status_code for r in answers] == [200] * 10 + [429] * 5
    assert all(form_errors(r) == [INVALID_LOGIN_TEXT] for r in answers[:10])
    assert all(1 <= retry_after(r) <= 900 for r in answers[10:])
    right = browser.login(ADMIN_EMAIL, sw.a.password)
    assert 1 <= retry_after(right) <= 900
    assert THROTTLED_TEXT in page(right)
    assert not browser.signed_in()
    assert tenant_events(sw.a.schema, email=ADMIN_EMAIL, action="login_failed") == 10
    assert tenant_events(sw.a.schema, email=ADMIN_EMAIL, action="login") == 0

    # Waiting is enough: the delay has passed and the per IP bucket refills (one per 90 s).
    let_the_delay_pass(schema=sw.a.schema, email=ADMIN_EMAIL)
    later = AdminBrowser(host=sw.a.host, ip="203.0.113.16")
    assert later.login(ADMIN_EMAIL, sw.a.password).status_code == 302
    assert later.signed_in()
    assert tenant_events(sw.a.schema, email=ADMIN_EMAIL, action="login") == 1
    with schema_context(sw.a.schema):
        event = AuditEvent.objects.filter(action="login").get()
        admin = User.objects.get(email=ADMIN_EMAIL)
        assert (event.actor_id, event.object_ids, event.ip) == (admin.pk, [admin.pk], later.ip)


def test_the_operators_host_is_throttled_and_audited_in_the_public_schema(
    sw: SecurityWorld, operator: User
) -> None:
    browser = AdminBrowser(host=PUBLIC_HOST, ip="203.0.113.20")

    statuses = [browser.login(OPERATOR_EMAIL, WRONG).status_code for _ in range(12)]
    assert statuses == [200] * 10 + [429] * 2
    assert 1 <= retry_after(browser.login(OPERATOR_EMAIL, OPERATOR_PASSWORD)) <= 900
    # Bucket keys carry the schema: "public" on the operators' host.
    assert failures_recorded(schema="public", email=OPERATOR_EMAIL) == 10

    let_the_delay_pass(schema="public", email=OPERATOR_EMAIL)
    assert AdminBrowser(host=PUBLIC_HOST, ip="203.0.113.21").login(
        OPERATOR_EMAIL, OPERATOR_PASSWORD
    ).status_code == (302)
    with schema_context("public"):
        events = PublicAuditEvent.objects.filter(actor_email=OPERATOR_EMAIL)
        assert events.filter(action="login_failed").count() == 10
        assert set(events.filter(action="login_failed").values_list("ip", flat=True)) == {
            browser.ip
        }
        success = events.get(action="login")
        assert (success.actor_id, success.object_ids) == (operator.pk, [operator.pk])
    # The tenant trails never hold the operators' host's events.
    assert tenant_events(sw.a.schema, email=OPERATOR_EMAIL, action="login_failed") == 0


def test_no_enumeration_difference(sw: SecurityWorld) -> None:
    """Unknown email, wrong password, and the RIGHT password of a non-staff user or of an
    inactive admin: the same page, the same statuses, the same throttle, audited alike, in
    similar time."""
    with schema_context(sw.a.schema):
        inactive = User(email="former-admin@example.com", role="tenant_admin", is_staff=True)
        inactive.is_active = False
        inactive.set_password(sw.a.password)
        inactive.save()
    cases = {
        "unknown": ("nobody-at-all@example.com", sw.a.password),
        "wrong-password": (ADMIN_EMAIL, WRONG),
        "not-staff": (email_for("clinician"), sw.a.password),
        "inactive": (inactive.email, sw.a.password),
    }
    browsers = {
        name: AdminBrowser(host=sw.a.host, ip=f"203.0.113.{30 + n}") for n, name in enumerate(cases)
    }
    responses: dict[str, list[HttpResponse]] = {name: [] for name in cases}
    for attempt in range(12):  # interleaved, so load on the machine hits every case alike
        for name, (email, password) in cases.items():
            response = browsers[name].login(email, password)
            if attempt > 0:  # the first is a warm-up (first template render)
                responses[name].append(response)
    answers = {
        name: [
            (
                r.status_code,
                # The seconds left differ by when each request came, not by the account.
                [re.sub(r"\d+", "<n>", e) for e in form_errors(r)],
                "Retry-After" in r,
            )
            for r in responses[name]
        ]
        for name in cases
    }
    # The nine checked attempts after the warm-up.
    timings = {name: statistics.median(browsers[name].durations[1:10]) for name in cases}
    assert not any(browser.signed_in() for browser in browsers.values())

    assert answers["unknown"] == answers["wrong-password"] == answers["not-staff"]
    assert answers["inactive"] == answers["unknown"]
    assert [status for status, _, _ in answers["unknown"]] == [200] * 9 + [429] * 2
    fastest, slowest = min(timings.values()), max(timings.values())
    assert slowest - fastest <= max(0.5 * fastest, 0.02), timings
    for email, _ in cases.values():
        # Every checked attempt (warm-up + 9) is a failure, counted and audited alike.
        assert failures_recorded(schema=sw.a.schema, email=email) == 10
        assert tenant_events(sw.a.schema, email=email, action="login_failed") == 10


def test_per_email_delay_grows_and_is_capped_never_a_lock(sw: SecurityWorld) -> None:
    """An attacker rotating addresses (so no per-IP bucket ever refuses): ten free failures, then
    each failure delays the next attempt by 1, 2, 4 ... s up to 15 minutes; once the delay has
    passed one more guess is checked, and the owner's right password is accepted."""
    schema, waits = sw.a.schema, []
    for n in range(10):
        assert AdminBrowser(host=sw.a.host, ip=ip(n)).login(ADMIN_EMAIL, WRONG).status_code == 200
    for n in range(10, 22):
        refused = AdminBrowser(host=sw.a.host, ip=ip(n)).login(ADMIN_EMAIL, WRONG)
        waits.append(retry_after(refused))
        let_the_delay_pass(schema=schema, email=ADMIN_EMAIL)
        checked = AdminBrowser(host=sw.a.host, ip=ip(n + 100)).login(ADMIN_EMAIL, WRONG)
        assert checked.status_code == 200  # checked (and failed) once the delay was over

    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]
    # Past the cap it is still a delay, not a lock: wait it out and the owner gets in.
    assert retry_after(AdminBrowser(host=sw.a.host, ip=ip(200)).login(ADMIN_EMAIL, WRONG)) == 900
    let_the_delay_pass(schema=schema, email=ADMIN_EMAIL)
    owner = AdminBrowser(host=sw.a.host, ip=ip(201))
    assert owner.login(ADMIN_EMAIL, sw.a.password).status_code == 302

    # The API's login shares the per-email record: ten more failures would be no free ride.
    api = APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=ip(202))
    refused = api.post(TOKEN_URL, {"email": ADMIN_EMAIL, "password": WRONG}, format="json")
    assert refused.status_code == 401  # the owner's success did not reset the count...
    again = APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=ip(203)).post(
        TOKEN_URL, {"email": ADMIN_EMAIL, "password": WRONG}, format="json"
    )
    assert again.status_code == 429  # ...so the next guess waits again (capped)
    assert int(again["Retry-After"]) == 900
    assert again.json()["error"]["code"] == "throttled"


def test_api_guesses_from_many_addresses_are_capped_per_email(sw: SecurityWorld) -> None:
    """The outside test's finding: 30 wrong passwords from 3 IPs, then a 4th IP logged in."""
    statuses = []
    for n in range(30):
        client = APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=ip(n // 10))
        body = {"email": email_for("nurse"), "password": WRONG}
        statuses.append(client.post(TOKEN_URL, body, format="json").status_code)
    assert statuses == [401] * 10 + [429] * 20
    fourth = APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=ip(3)).post(
        TOKEN_URL, sw.a.credentials("nurse"), format="json"
    )
    assert fourth.status_code == 429
    assert fourth.json()["error"]["code"] == "throttled"
    assert tenant_events(sw.a.schema, email=email_for("nurse"), action="login_failed") == 10


# --- device tokens -----------------------------------------------------------------------------------


def test_the_device_cookie_holder_still_logs_in_during_an_attack(sw: SecurityWorld) -> None:
    owner = AdminBrowser(host=sw.a.host, ip="203.0.113.40")
    assert owner.login(ADMIN_EMAIL, sw.a.password).status_code == 302
    assert owner.device_cookie
    cookie = owner.client.cookies[device_cookie_name()]
    assert cookie["httponly"]
    assert (cookie["samesite"], cookie["path"]) == ("Strict", "/")

    # The attack: 15 guesses from the owner's own address (a shared NAT) and from others.
    admin_guesses(sw, count=15, first_ip=owner.ip)
    attacker = AdminBrowser(host=sw.a.host, ip=owner.ip)
    assert retry_after(attacker.login(ADMIN_EMAIL, sw.a.password)) > 20  # even the right one

    # The owner's browser, its session long gone, only the device cookie left: in at once.
    returning = owner.with_device_cookie_only()
    assert returning.login(ADMIN_EMAIL, sw.a.password).status_code == 302
    assert returning.signed_in()
    # Its own typos count on its own record: one wrong password does not lock it either.
    again = owner.with_device_cookie_only()
    assert again.login(ADMIN_EMAIL, WRONG).status_code == 200
    assert again.login(ADMIN_EMAIL, sw.a.password).status_code == 302

    # A device cookie only vouches for the account and the host it was issued for.
    for forged in (
        _other_tenants_cookie(sw),
        owner.device_cookie[:-2] + ("AA" if not owner.device_cookie.endswith("AA") else "BB"),
    ):
        stranger = AdminBrowser(host=sw.a.host, ip=ip(70))
        stranger.client.cookies[device_cookie_name()] = forged
        assert stranger.login(ADMIN_EMAIL, sw.a.password).status_code == 429


def _other_tenants_cookie(sw: SecurityWorld) -> str:
    browser = AdminBrowser(host=sw.b.host, ip="203.0.113.41")
    assert browser.login(ADMIN_EMAIL, sw.b.password).status_code == 302
    assert browser.device_cookie
    return browser.device_cookie


def test_the_api_device_token_holder_still_logs_in_during_an_attack(sw: SecurityWorld) -> None:
    owner_ip = "203.0.113.50"
    first = APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=owner_ip).post(
        TOKEN_URL, sw.a.credentials("clinician"), format="json"
    )
    assert first.status_code == 200
    device_token = first.json()["device_token"]
    assert device_token

    for n in range(15):  # a patient attacker, from the owner's address too
        let_the_delay_pass(schema=sw.a.schema, email=email_for("clinician"))
        attacker = APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=owner_ip if n < 5 else ip(n))
        guess = {"email": email_for("clinician"), "password": WRONG}
        assert attacker.post(TOKEN_URL, guess, format="json").status_code == 401
    without = APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=owner_ip).post(
        TOKEN_URL, sw.a.credentials("clinician"), format="json"
    )
    assert without.status_code == 429
    assert int(without["Retry-After"]) > 20

    with_token = APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=owner_ip).post(
        TOKEN_URL, {**sw.a.credentials("clinician"), "device_token": device_token}, format="json"
    )
    assert with_token.status_code == 200, with_token.content
    assert with_token.json()["device_token"] != device_token  # a fresh one each login
    # Someone else's token (the nurse's) or garbage is ignored: counted with the attack.
    nurse_token = (
        APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=ip(90))
        .post(TOKEN_URL, sw.a.credentials("nurse"), format="json")
        .json()["device_token"]
    )
    for forged in (nurse_token, "garbage", "x" * 600, uuid.uuid4().hex):
        response = APIClient(HTTP_HOST=sw.a.host, REMOTE_ADDR=owner_ip).post(
            TOKEN_URL, {**sw.a.credentials("clinician"), "device_token": forged}, format="json"
        )
        assert response.status_code in {429, 400}, (forged[:20], response.status_code)
        if response.status_code == 400:  # longer than the field allows: validation, no login
            assert response.json()["error"]["code"] == "validation_error"


# --- the password-change form --------------------------------------------------------------------------


def test_the_password_change_form_charges_the_same_buckets(sw: SecurityWorld) -> None:
    """A stolen admin session is not an unthrottled oracle for the password: the old-password
    check of /admin/password_change/ counts like a login, and refuses with 429."""
    browser = AdminBrowser(host=sw.a.host, ip="203.0.113.60")
    assert browser.login(ADMIN_EMAIL, sw.a.password).status_code == 302
    session_only = AdminBrowser(host=sw.a.host, ip="203.0.113.61")  # a thief: no device cookie
    session_only.client.cookies["sessionid"] = browser.client.cookies["sessionid"].value

    answers = [session_only.change_password(WRONG, "New-Passphrase-99") for _ in range(10)]
    assert [r.status_code for r in answers] == [200] * 10
    assert all("Your old password was entered incorrectly" in page(r) for r in answers)
    assert failures_recorded(schema=sw.a.schema, email=ADMIN_EMAIL) == 10

    refused = session_only.change_password(sw.a.password, "New-Passphrase-99")
    assert 1 <= retry_after(refused) <= 900
    with schema_context(sw.a.schema):
        assert User.objects.get(email=ADMIN_EMAIL).check_password(sw.a.password)
    # The same per-email record guards the login page.
    assert AdminBrowser(host=sw.a.host, ip=ip(5)).login(ADMIN_EMAIL, WRONG).status_code == 429

    let_the_delay_pass(schema=sw.a.schema, email=ADMIN_EMAIL)
    changed = AdminBrowser(host=sw.a.host, ip=ip(6))
    assert changed.login(ADMIN_EMAIL, sw.a.password).status_code == 302
    done = changed.change_password(sw.a.password, "New-Passphrase-99")
    assert done.status_code == 302, form_errors(done)


# --- a real server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(security_world: SecurityWorld) -> Iterator[LiveServer]:
    with live_gunicorn(workers=2, name="login-guard") as server:
        yield server


def _live_login(server: LiveServer, session: requests.Session, *, host: str, password: str) -> int:
    url = f"{server.url}/admin/login/?next=/admin/"
    page_ = session.get(url, headers={"Host": host}, timeout=10)
    token = page_.text.split('name="csrfmiddlewaretoken" value="', 1)[1].split('"', 1)[0]
    response = session.post(
        url,
        data={"username": ADMIN_EMAIL, "password": password, "csrfmiddlewaretoken": token},
        headers={"Host": host, "Referer": url},
        allow_redirects=False,
        timeout=10,
    )
    return response.status_code


def test_live_admin_attack_leaves_the_device_holder_in(sw: SecurityWorld, live: LiveServer) -> None:
    """Over real HTTP to gunicorn (two workers, shared Redis, committed audit rows). Everyone is
    127.0.0.1 here, as behind one NAT: the attacker fills the address's bucket for the account,
    which the owner's browser, holding its device cookie, is not charged to."""
    side = sw.a
    owner = requests.Session()
    assert _live_login(live, owner, host=side.host, password=side.password) == 302
    assert owner.cookies.get(device_cookie_name())

    attacker = requests.Session()
    statuses = [_live_login(live, attacker, host=side.host, password=WRONG) for _ in range(15)]
    assert statuses == [200] * 9 + [429] * 6  # the owner's login was the bucket's first attempt
    assert _live_login(live, attacker, host=side.host, password=side.password) == 429

    returning = requests.Session()
    returning.cookies.set(device_cookie_name(), owner.cookies[device_cookie_name()])
    assert _live_login(live, returning, host=side.host, password=side.password) == 302
    index = returning.get(f"{live.url}/admin/", headers={"Host": side.host}, timeout=10)
    assert index.status_code == 200
    # Committed by the server (the in-process tests' events were rolled back).
    assert tenant_events(side.schema, email=ADMIN_EMAIL, action="login_failed") == 9
    assert tenant_events(side.schema, email=ADMIN_EMAIL, action="login") == 2
