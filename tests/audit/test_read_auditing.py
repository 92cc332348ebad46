"""Read auditing by the base viewset for a sensitive resource (here a stand-in over users, see
tests/audit/urls.py): one event per list page holding every id, one per detail read."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create
from audit.models import AuditEvent
from tests.audit.conftest import api_client, data_statements
from tests.audit.urls import AUDITED_USERS_URL
from tests.conftest import ADMIN_EMAIL, CLINICIAN_ID, TenantWorld

pytestmark = pytest.mark.urls("tests.audit.urls")


def _add_users(world: TenantWorld, count: int) -> None:
    with tenant_context(world.tenant):
        for number in range(count):
            user_create(email=f"user{number:02}@example.org", role=Role.VIEWER, password=None)


def test_a_list_page_is_one_event_holding_every_id(alpha: TenantWorld) -> None:
    _add_users(alpha, 5)
    client = api_client(alpha)
    response = client.get(AUDITED_USERS_URL, {"page_size": 4}, HTTP_X_REQUEST_ID="req-list-0001")
    assert response.status_code == 200
    page_ids = [row["id"] for row in response.json()["results"]]
    assert len(page_ids) == 4

    with tenant_context(alpha.tenant):
        admin = User.objects.get(email=ADMIN_EMAIL)
        event = AuditEvent.objects.get()
    assert [str(pk) for pk in event.object_ids] == page_ids
    assert (event.action, event.allowed, event.object_type) == ("read", True, "accounts.user")
    assert (event.actor_id, event.actor_email) == (admin.pk, ADMIN_EMAIL)
    assert event.request_id == "req-list-0001"
    assert event.ip == "127.0.0.1"

    client.get(response.json()["next"])
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.count() == 2
        assert len(AuditEvent.objects.order_by("-id").first().object_ids) == 3  # type: ignore[union-attr]


def test_a_detail_read_is_one_event_for_that_object(alpha: TenantWorld) -> None:
    response = api_client(alpha).get(f"{AUDITED_USERS_URL}{CLINICIAN_ID}/")
    assert response.status_code == 200
    with tenant_context(alpha.tenant):
        event = AuditEvent.objects.get()
    assert (event.action, event.object_type, event.object_ids) == (
        "read",
        "accounts.user",
        [CLINICIAN_ID],
    )


def test_refused_and_missing_reads_record_nothing_as_read(alpha: TenantWorld) -> None:
    api_client(alpha).get(f"{AUDITED_USERS_URL}01900000-0000-7000-8000-0000000000ff/")
    api_client(alpha, email="clinician@example.com").get(AUDITED_USERS_URL)
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.filter(action="read", allowed=True).count() == 0
        denied = AuditEvent.objects.get(allowed=False)
    # The refused list read is recorded as a denial by the base viewset; the 404 is not a read.
    assert (denied.action, denied.actor_email, denied.object_ids) == (
        "read",
        "clinician@example.com",
        [],
    )


def test_the_audit_insert_is_one_statement_whatever_the_page_size(alpha: TenantWorld) -> None:
    client = api_client(alpha)
    client.get(AUDITED_USERS_URL)  # warm up

    def statements() -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(AUDITED_USERS_URL, {"page_size": 100}).status_code == 200
        return data_statements(queries)

    few = statements()
    _add_users(alpha, 30)
    many = statements()
    # The authenticated user (read per request, issue 22 item 3), the page and one INSERT.
    assert len(few) == len(many) == 3
    assert many[-1].startswith('INSERT INTO "audit_auditevent"')
