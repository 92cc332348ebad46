"""A signed-in Django admin session on a tenant host, for the issue 21 tests that drive the admin
over HTTP (plan limits, caching headers, CSRF between hosts): Django's test Client with CSRF
checks on, the session created the way a login creates it (``force_login`` in the tenant's
schema, so these tests do not depend on the login form), and form posts carrying the page's
CSRF token."""

from __future__ import annotations

import re
from typing import Any

from django.test import Client
from django_tenants.utils import schema_context

from accounts.models import User
from apikit.tenancy import activate_public
from tests.security.world import Side, email_for

_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_ERRORS = re.compile(r'<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', re.S)


def admin_session(side: Side, *, role: str = "tenant_admin", **client_extra: Any) -> Client:
    """A browser on ``side``'s admin, signed in as that tenant's user of ``role``."""
    client = Client(HTTP_HOST=side.host, enforce_csrf_checks=True, **client_extra)
    with schema_context(side.schema):
        client.force_login(User.objects.get(email=email_for(role)))
    activate_public()
    return client


def csrf_token(client: Client, path: str, **extra: Any) -> str:
    """The CSRF token of the form on ``path`` (the page also sets the CSRF cookie)."""
    response = client.get(path, **extra)
    assert response.status_code == 200, (path, response.status_code)
    found = _CSRF_INPUT.search(response.content.decode())
    assert found, f"no CSRF token on {path}"
    return found.group(1)


def form_errors(response: Any) -> list[str]:
    """The error lists of a rendered admin form, tags stripped."""
    return [
        re.sub(r"<[^>]+>", "", found).strip()
        for found in _ERRORS.findall(response.content.decode())
    ]
