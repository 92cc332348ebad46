"""Helpers for the audit tests: events with a known request context, API clients per user."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from accounts.tokens import token_pair_issue
from apikit.request_context import RequestContext
from audit.models import AuditEvent
from audit.services import audit_event_record
from tests.conftest import ADMIN_EMAIL, TenantWorld

EVENTS_URL = "/api/v1/audit/events/"


def context_for(
    *,
    actor_id: uuid.UUID | str | None = None,
    actor_email: str = "",
    ip: str = "203.0.113.7",
    user_agent: str = "pytest-agent/1.0",
    request_id: str = "req-00000001",
    trace_id: str = "0af7651916cd43dd8448eb211c80319c",
) -> RequestContext:
    return RequestContext(
        actor_id=str(actor_id) if actor_id is not None else None,
        actor_email=actor_email,
        ip=ip,
        user_agent=user_agent,
        request_id=request_id,
        trace_id=trace_id,
    )


def record(
    *,
    action: str = AuditEvent.Action.READ,
    object_type: str = "clinical.patient",
    object_ids: Iterable[uuid.UUID | str] = (),
    changed_fields: Iterable[str] = (),
    allowed: bool = True,
    actor_id: uuid.UUID | None = None,
    actor_email: str = "",
) -> AuditEvent:
    """One event in the active schema (a tenant's), through the service."""
    event = audit_event_record(
        context=context_for(actor_id=actor_id, actor_email=actor_email),
        action=action,
        object_type=object_type,
        object_ids=object_ids,
        changed_fields=changed_fields,
        allowed=allowed,
    )
    assert isinstance(event, AuditEvent)
    return event


def data_statements(queries: CaptureQueriesContext) -> list[str]:
    """The SQL a block ran, without django-tenants' ``SET search_path`` (issued per cursor)."""
    return [
        query["sql"]
        for query in queries.captured_queries
        if not query["sql"].startswith("SET search_path")
    ]


def access_token(world: TenantWorld, *, email: str = ADMIN_EMAIL) -> str:
    """A fresh access token for ``email`` of ``world``, issued directly (these tests do not
    depend on the login endpoint)."""
    with tenant_context(world.tenant):
        return token_pair_issue(user=User.objects.get(email=email)).access


def api_client(world: TenantWorld, *, email: str = ADMIN_EMAIL) -> APIClient:
    """An API client on the tenant's host, authenticated as ``email``."""
    client = world.client()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(world, email=email)}")
    return client
