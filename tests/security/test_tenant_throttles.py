"""Issue 21, item 5: throttles that cannot be turned against a tenant.

Anonymous callers share a tenant-wide bucket of their own (ANON_TENANT_SHARE_PERCENT of the
plan's ceiling) instead of drawing on the ceiling, and a token refresh whose signature and tenant
verify is charged to its user. Tenant A of the committed world, moved to a small plan inside the
test's transaction.

Before the fix (checked by stashing it): 25 anonymous calls from 25 addresses, each far under the
per-IP limit, drained A's ceiling of 20 and A's tenant_admin got 429 on every request; and a user
refreshing twice from an address with an anonymous limit of 1 got 429, while their junk-sending
neighbour's bucket paid for nothing.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from rest_framework.test import APIClient

from tenants.models import Plan, Tenant
from tenants.routing import get_router
from tests.security.conftest import SecurityWorld
from tests.security.world import Side

pytestmark = pytest.mark.security

ME_URL = "/api/v1/auth/me/"
REFRESH_URL = "/api/v1/auth/token/refresh/"
PATIENTS_URL = "/api/v1/clinical/patients/"
JUNK = {"refresh": "not-a-token"}


def give_plan(side: Side, **numbers: int) -> None:
    """Move the tenant to a fresh plan (rolled back with the test); routing sees it at once."""
    plan = Plan.objects.create(name=f"sec-throttle-{uuid.uuid4().hex[:8]}", **numbers)
    Tenant.objects.filter(slug=side.slug).update(plan=plan)
    get_router().forget_local()


def anonymous(side: Side, ip: str) -> APIClient:
    return APIClient(HTTP_HOST=side.host, REMOTE_ADDR=ip)


def refresh(client: APIClient, token: str) -> Any:
    return client.post(REFRESH_URL, {"refresh": token}, format="json")


def test_anonymous_traffic_from_many_addresses_does_not_starve_the_tenant_admin(
    sw: SecurityWorld, settings: Any
) -> None:
    settings.ANON_TENANT_SHARE_PERCENT = 20
    give_plan(sw.a, requests_per_minute=20, user_burst_per_minute=1000)

    flood = [
        anonymous(sw.a, f"198.51.100.{n}").post(REFRESH_URL, JUNK, format="json").status_code
        for n in range(1, 26)
    ]
    # Every address is under its own limit (120 a minute); together they get 20 % of 20.
    assert flood == [401] * 4 + [429] * 21

    admin = sw.client(sw.a, "tenant_admin")
    answers = [admin.get(ME_URL).status_code for _ in range(10)]
    answers += [admin.get(PATIENTS_URL).status_code for _ in range(10)]
    assert answers == [200] * 20  # the whole ceiling is the signed-in users'
    assert admin.get(ME_URL).status_code == 429  # ...and it is still a ceiling


def test_a_verified_token_refresh_is_charged_to_its_user(sw: SecurityWorld, settings: Any) -> None:
    settings.ANON_REQUESTS_PER_MINUTE = 1
    give_plan(sw.a, requests_per_minute=1000, user_burst_per_minute=3)
    shared_ip = "203.0.113.77"
    client = anonymous(sw.a, shared_ip)

    token, statuses = sw.refresh["a"]["nurse"], []
    for _ in range(4):
        response = refresh(client, token)
        statuses.append(response.status_code)
        if response.status_code == 200:
            token = response.json()["refresh"]
    # The nurse's burst of 3, not the address's anonymous 1 a minute.
    assert statuses == [200, 200, 200, 429]
    assert sw.client(sw.a, "nurse").get(ME_URL).status_code == 429  # the same user bucket
    assert sw.client(sw.a, "clinician").get(ME_URL).status_code == 200

    # The address's anonymous bucket is untouched by the nurse's refreshes...
    assert client.post(REFRESH_URL, JUNK, format="json").status_code == 401
    assert client.post(REFRESH_URL, JUNK, format="json").status_code == 429


@pytest.mark.parametrize("kind", ["other_tenant", "bad_signature", "access_token"])
def test_only_a_verified_refresh_is_charged_to_a_user(
    sw: SecurityWorld, settings: Any, kind: str
) -> None:
    """A refresh token whose signature AND tenant verify is charged to its user; a token of
    another tenant (same user id), a tampered one or an access token pays from the anonymous
    buckets, so it can neither drain a user's buckets nor lean on them."""
    settings.ANON_REQUESTS_PER_MINUTE = 1
    give_plan(sw.a, requests_per_minute=1000, user_burst_per_minute=2)
    valid = sw.refresh["a"]["nurse"]
    token = {
        "other_tenant": sw.refresh["b"]["nurse"],
        "bad_signature": valid[:-3] + ("AAA" if not valid.endswith("AAA") else "BBB"),
        "access_token": sw.tokens["a"]["nurse"],
    }[kind]
    client = anonymous(sw.a, "203.0.113.88")

    assert [refresh(client, token).status_code for _ in range(3)] == [401, 429, 429]
    # The address's anonymous allowance is spent; the nurse's own refresh is still served, and
    # the nurse's burst of 2 is whole: the refresh and one more request, then 429.
    assert refresh(client, valid).status_code == 200
    nurse = sw.client(sw.a, "nurse")
    assert [nurse.get(ME_URL).status_code for _ in range(2)] == [200, 429]
