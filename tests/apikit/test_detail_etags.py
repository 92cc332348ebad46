"""Every detail route of the API, read from the URL conf: a mutable resource's GET carries an
``ETag`` and a ``version`` field naming the same version, and a write sent with a stale
``If-Match`` answers 412 ``precondition_failed`` (the API contract, DESIGN.md).

A detail route is one that answers GET for one resource: its path ends with the resource's
``pk``, or it has no path parameter and answers PUT / PATCH (an organisation-wide singleton such
as the reminder settings). Resources that are not edited in place are listed in
``NOT_VERSIONED`` with the reason; a listed route that starts answering PUT or PATCH fails here,
so the allowlist cannot hide an editable resource.

The rows come from the committed two-tenant world of the security suite (tests/security/world.py,
prefix ``etag``): every route is called on tenant A as its tenant_admin.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.roles import Role
from accounts.tokens import token_pair_issue
from apikit.tenancy import activate_public
from tenants.models import Tenant
from tests.security.routes import SHARED_IDS, Route, api_routes
from tests.security.world import USER_IDS, World, world_create, world_drop

PREFIX = "etag"

# Detail routes of resources with no client-editable state, so no lost update for If-Match to
# prevent, and no version to show. Every entry says why.
NOT_VERSIONED: dict[str, str] = {
    "audit-event-detail": (
        "Append-only: audit events are written by the server inside the audited request and are "
        "never changed or deleted through the API."
    ),
    "clinical-reminder-detail": (
        "Read-only outbox: reminder messages are planned by the appointment services and updated "
        "by the SMS gateway's signed callbacks, never by a client."
    ),
    "farms-observation-detail": (
        "Append-only: an observation is never edited in place; a correction is a new row with "
        "`supersedes`, and DELETE archives without depending on the row's content "
        "(tests/farms/test_append_only.py)."
    ),
    "farms-harvest-detail": (
        "Append-only, as observations: corrected by a superseding row, never edited in place."
    ),
    "invitation-detail": (
        "No client-editable fields: an invitation changes only through the resend and revoke "
        "actions, whose outcome does not depend on the copy the caller read (resend replaces the "
        "token, revoke is terminal and idempotent)."
    ),
    "sync-device-detail": (
        "No client-editable fields: a device is registered once and changes only by the revoke "
        "action, which is terminal and idempotent."
    ),
}

_ENDS_WITH_PK = re.compile(r"(\(\?P<pk>[^)]*\)|<(\w+:)?pk>)/\$?$")
_VERSION = re.compile(r'^W/"(?P<version>\d+)(;[^"]*)?"$')


def _is_detail(route: Route) -> bool:
    if "GET" not in route.methods:
        return False
    if _ENDS_WITH_PK.search(route.pattern):
        return True
    return not route.params and bool({"PUT", "PATCH"} & set(route.methods))


DETAIL_ROUTES = [route for route in api_routes() if _is_detail(route)]
VERSIONED_ROUTES = [route for route in DETAIL_ROUTES if route.name not in NOT_VERSIONED]


@pytest.fixture(scope="module")
def etag_world(django_db_setup: None, django_db_blocker: Any) -> Iterator[tuple[World, str]]:
    with django_db_blocker.unblock():
        assert not connection.in_atomic_block
        world = world_create(PREFIX)
        with tenant_context(Tenant.objects.get(slug=world.a.slug)):
            token = token_pair_issue(user=User.objects.get(pk=USER_IDS[Role.TENANT_ADMIN])).access
        activate_public()
        try:
            yield world, token
        finally:
            connection.close()
            world_drop(PREFIX)


@pytest.fixture
def admin_client(etag_world: tuple[World, str], db: None) -> APIClient:
    world, token = etag_world
    client = APIClient(HTTP_HOST=world.a.host)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client


# Singletons the world does not seed: stored once (version 1) before the walk reads them.
SINGLETON_BODIES: dict[str, dict[str, Any]] = {
    "notify-sender": {"from_number": "+12025550123", "messaging_service_sid": ""},
    "clinical-reminder-settings": {},  # its GET body is a valid PUT body
}


def _prepare(client: APIClient, route: Route, path: str) -> None:
    if route.name not in SINGLETON_BODIES:
        return
    current = client.get(path)
    assert current.status_code == 200, current.content
    body = {**_writable(current.json()), **SINGLETON_BODIES[route.name]}
    stored = client.put(path, body, format="json")
    assert stored.status_code in (200, 201), (route.name, stored.content)


def _writable(body: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in body.items()
        if key not in {"id", "version", "created_at", "updated_at"}
    }


def test_every_detail_route_is_versioned_or_allowlisted() -> None:
    names = {route.name for route in DETAIL_ROUTES}
    assert VERSIONED_ROUTES, "the walker found no detail route"
    assert {"user-detail", "clinical-patient-detail", "farms-farm-detail"} <= names
    assert set(NOT_VERSIONED) <= names, f"stale allowlist entries: {set(NOT_VERSIONED) - names}"
    for route in DETAIL_ROUTES:
        if route.name in NOT_VERSIONED:
            editable = {"PUT", "PATCH"} & set(route.methods)
            assert not editable, f"{route.name} answers {editable}: it needs an ETag and version"


@pytest.mark.parametrize("route", VERSIONED_ROUTES, ids=lambda route: route.name)
def test_detail_get_has_etag_and_version_and_stale_if_match_is_412(
    admin_client: APIClient, route: Route
) -> None:
    write = "PATCH" if "PATCH" in route.methods else "PUT" if "PUT" in route.methods else "DELETE"
    assert write in route.methods, f"{route.name}: a versioned resource without a write"
    path = route.path(SHARED_IDS)
    _prepare(admin_client, route, path)

    response = admin_client.get(path)
    assert response.status_code == 200, (route.name, response.content)
    etag = response.headers.get("ETag", "")
    match = _VERSION.match(etag)
    assert match, f"{route.name}: ETag {etag!r}"
    body = response.json()
    assert "version" in body, f"{route.name}: no version field"
    assert body["version"] == int(match["version"]) >= 1, (route.name, body["version"], etag)

    stale = f'W/"{body["version"] - 1}"'
    payload = _writable(body) if write == "PUT" else {}
    refused = admin_client.generic(
        write,
        path,
        data=json.dumps(payload),
        content_type="application/json",
        HTTP_IF_MATCH=stale,
    )
    assert refused.status_code == 412, (route.name, write, refused.content)
    assert refused.json()["error"]["code"] == "precondition_failed"
    # Refused means unchanged: the resource still answers its original version.
    assert admin_client.get(path).headers["ETag"] == etag
