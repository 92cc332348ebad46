"""GET /api/v1/audit/events/: tenant_admin only, filters, cursor pagination, constant queries."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from accounts.roles import Role
from accounts.services import user_create
from audit.api.filters import BOOLEAN_INVALID
from audit.models import AuditEvent
from tests.audit.conftest import EVENTS_URL, access_token, api_client, data_statements, record
from tests.conftest import CLINICIAN_ID, TenantWorld

PATIENT_A = uuid.UUID("01900000-0000-7000-8000-0000000000a1")
PATIENT_B = uuid.UUID("01900000-0000-7000-8000-0000000000b1")
SHARED_EVENT_ID = uuid.UUID("01900000-0000-7000-8000-00000000e001")


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


# --- who may read the trail -------------------------------------------------------------------------


def test_tenant_admin_lists_and_retrieves(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        event = record(
            action="update",
            object_ids=[PATIENT_A],
            changed_fields=["phone"],
            actor_id=CLINICIAN_ID,
            actor_email="clinician@example.com",
        )
    client = api_client(alpha)
    listed = client.get(EVENTS_URL)
    assert listed.status_code == 200
    body = listed.json()
    assert set(body) == {"results", "next", "previous"}
    assert body["results"] == [
        {
            "id": str(event.pk),
            "occurred_at": event.occurred_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor_id": str(CLINICIAN_ID),
            "actor_email": "clinician@example.com",
            "action": "update",
            "allowed": True,
            "object_type": "clinical.patient",
            "object_ids": [str(PATIENT_A)],
            "changed_fields": ["phone"],
            "ip": "203.0.113.7",
            "user_agent": "pytest-agent/1.0",
            "request_id": "req-00000001",
            "trace_id": "0af7651916cd43dd8448eb211c80319c",
        }
    ]
    detail = client.get(f"{EVENTS_URL}{event.pk}/")
    assert detail.status_code == 200
    assert detail.json() == body["results"][0]


@pytest.mark.parametrize("role", [role for role in Role.values if role != Role.TENANT_ADMIN])
def test_every_other_role_is_refused(alpha: TenantWorld, role: str) -> None:
    with tenant_context(alpha.tenant):
        event = record(object_ids=[PATIENT_A])
        user_create(email=f"{role}@example.org", role=role, password=None, is_active=True)
    client = api_client(alpha, email=f"{role}@example.org")
    for response in (client.get(EVENTS_URL), client.get(f"{EVENTS_URL}{event.pk}/")):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"


def test_anonymous_is_refused(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        event = record()
    for url in (EVENTS_URL, f"{EVENTS_URL}{event.pk}/"):
        response = alpha.client().get(url)
        assert response.status_code == 401
        assert response.json()["error"]["status"] == 401


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_no_route_writes(alpha: TenantWorld, method: str) -> None:
    with tenant_context(alpha.tenant):
        event = record()
    client = api_client(alpha)
    for url in (EVENTS_URL, f"{EVENTS_URL}{event.pk}/"):
        response = getattr(client, method)(url, {"action": "delete"}, format="json")
        # The role check runs first: no role holds add/change/delete on audit events.
        assert response.status_code == 403, (method, url)
        assert response.json()["error"]["code"] == "permission_denied"
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.get(allowed=True).action == "read"
        # Each refused attempt is itself on the record.
        assert AuditEvent.objects.filter(allowed=False, object_type="audit.auditevent").count() == 2


# --- tenants never mix ------------------------------------------------------------------------------


def test_each_host_sees_only_its_own_events(alpha: TenantWorld, beta: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        AuditEvent.objects.create(
            id=SHARED_EVENT_ID, action="read", object_type="alpha.thing", object_ids=[PATIENT_A]
        )
        alpha_only = record(object_type="alpha.only")
    with tenant_context(beta.tenant):
        AuditEvent.objects.create(
            id=SHARED_EVENT_ID, action="delete", object_type="beta.thing", object_ids=[PATIENT_A]
        )

    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.get(pk=SHARED_EVENT_ID).object_type == "alpha.thing"
    with tenant_context(beta.tenant):
        assert AuditEvent.objects.get(pk=SHARED_EVENT_ID).object_type == "beta.thing"
        assert not AuditEvent.objects.filter(pk=alpha_only.pk).exists()

    alpha_client, beta_client = api_client(alpha), api_client(beta)
    assert _ids(alpha_client.get(EVENTS_URL)) == [str(alpha_only.pk), str(SHARED_EVENT_ID)]
    assert _ids(beta_client.get(EVENTS_URL)) == [str(SHARED_EVENT_ID)]
    assert alpha_client.get(f"{EVENTS_URL}{SHARED_EVENT_ID}/").json()["action"] == "read"
    assert beta_client.get(f"{EVENTS_URL}{SHARED_EVENT_ID}/").json()["action"] == "delete"
    missing = beta_client.get(f"{EVENTS_URL}{alpha_only.pk}/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    by_object = beta_client.get(EVENTS_URL, {"object_id": str(PATIENT_A)})
    assert _ids(by_object) == [str(SHARED_EVENT_ID)]


def test_a_token_of_one_tenant_is_refused_on_the_other_host(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    intruder = beta.client()
    intruder.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(alpha)}")
    assert intruder.get(EVENTS_URL).status_code == 401


# --- filters ----------------------------------------------------------------------------------------


@pytest.fixture
def trail(alpha: TenantWorld) -> dict[str, AuditEvent]:
    with tenant_context(alpha.tenant):
        return {
            "read_a": record(object_ids=[PATIENT_A, PATIENT_B], actor_id=CLINICIAN_ID),
            "denied": record(action="delete", object_ids=[PATIENT_B], allowed=False),
            "user": record(action="update", object_type="accounts.user", object_ids=[CLINICIAN_ID]),
        }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["user", "denied", "read_a"]),
        ({"actor": str(CLINICIAN_ID)}, ["read_a"]),
        ({"action": "delete"}, ["denied"]),
        ({"action": "login"}, []),
        ({"object_type": "accounts.user"}, ["user"]),
        ({"object_id": str(PATIENT_B)}, ["denied", "read_a"]),
        ({"object_id": str(PATIENT_A)}, ["read_a"]),
        ({"allowed": "false"}, ["denied"]),
        ({"allowed": "true"}, ["user", "read_a"]),
        ({"action": "read", "object_id": str(PATIENT_B)}, ["read_a"]),
    ],
)
def test_filters(
    alpha: TenantWorld,
    trail: dict[str, AuditEvent],
    params: dict[str, str],
    expected: list[str],
) -> None:
    response = api_client(alpha).get(EVENTS_URL, params)
    assert _ids(response) == [str(trail[name].pk) for name in expected]


def test_time_window_filters(alpha: TenantWorld, trail: dict[str, AuditEvent]) -> None:
    client = api_client(alpha)
    middle = trail["denied"].occurred_at
    after = client.get(EVENTS_URL, {"occurred_after": middle.isoformat()})
    assert _ids(after) == [str(trail["user"].pk), str(trail["denied"].pk)]
    before = client.get(EVENTS_URL, {"occurred_before": middle.isoformat()})
    assert _ids(before) == [str(trail["read_a"].pk)]
    future = (middle + timedelta(days=1)).isoformat()
    assert _ids(client.get(EVENTS_URL, {"occurred_after": future})) == []


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({"actor": "not-a-uuid"}, {"actor"}),
        ({"object_id": "123"}, {"object_id"}),
        ({"action": "peek"}, {"action"}),
        ({"allowed": "maybe"}, {"allowed"}),
        ({"occurred_after": "yesterday"}, {"occurred_after"}),
        ({"occurred_before": "2026-13-40T00:00:00Z", "actor": "x"}, {"occurred_before", "actor"}),
    ],
)
def test_invalid_filter_values_are_a_400_envelope(
    alpha: TenantWorld, params: dict[str, str], fields: set[str]
) -> None:
    response = api_client(alpha).get(EVENTS_URL, params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["status"] == 400
    assert error["code"] == "validation_error"
    assert set(error["fields"]) == fields
    assert all(
        isinstance(message, str) for messages in error["fields"].values() for message in messages
    )


# --- pagination and cost ----------------------------------------------------------------------------


def test_cursor_pagination_walks_every_event_once_newest_first(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        created = [str(record(object_ids=[uuid.uuid4()]).pk) for _ in range(7)]
    client = api_client(alpha)
    seen: list[str] = []
    url: str | None = f"{EVENTS_URL}?page_size=3"
    pages = 0
    while url:
        response = client.get(url)
        seen += _ids(response)
        url = response.json()["next"]
        pages += 1
    assert pages == 3
    assert seen == list(reversed(created))
    last_page = client.get(f"{EVENTS_URL}?page_size=3").json()
    assert last_page["previous"] is None


def test_page_size_is_capped_at_200(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        AuditEvent.objects.bulk_create(
            [AuditEvent(action="read", object_type="clinical.patient") for _ in range(205)]
        )
    response = api_client(alpha).get(EVENTS_URL, {"page_size": 1000})
    assert len(_ids(response)) == 200
    assert response.json()["next"] is not None


def _list_statements(client: Any) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(EVENTS_URL, {"page_size": 100})
    assert response.status_code == 200
    return data_statements(queries)


def test_query_count_does_not_grow_with_the_page(alpha: TenantWorld) -> None:
    client = api_client(alpha)
    with tenant_context(alpha.tenant):
        record()
    client.get(EVENTS_URL)  # warm caches (tenant routing)
    one = _list_statements(client)
    with tenant_context(alpha.tenant):
        AuditEvent.objects.bulk_create(
            [AuditEvent(action="read", object_type="clinical.patient") for _ in range(49)]
        )
    fifty = _list_statements(client)
    # The authenticated user (read per request, issue 22 item 3) and the page.
    assert len(one) == len(fifty) == 2
    assert 'FROM "audit_auditevent"' in fifty[-1]


def test_reading_the_trail_is_not_itself_recorded(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        record()
    client = api_client(alpha)
    client.get(EVENTS_URL)
    client.get(EVENTS_URL, {"action": "read"})
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.count() == 1


def test_invalid_filter_messages(alpha: TenantWorld) -> None:
    response = api_client(alpha).get(EVENTS_URL, {"allowed": "yes", "actor": "nope"})
    assert response.json()["error"]["fields"] == {
        "actor": ["Enter a valid UUID."],
        "allowed": [BOOLEAN_INVALID],
    }


def test_a_time_without_offset_is_utc(alpha: TenantWorld, trail: dict[str, AuditEvent]) -> None:
    naive = trail["denied"].occurred_at.astimezone(UTC).replace(tzinfo=None).isoformat()
    response = api_client(alpha).get(EVENTS_URL, {"occurred_after": naive})
    assert _ids(response) == [str(trail["user"].pk), str(trail["denied"].pk)]
