"""The tenant admin shows the audit trail read-only: no add, change or delete, not even by POST."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client
from django_tenants.utils import schema_context, tenant_context

from accounts.models import User
from audit.models import AuditEvent
from tests.audit.conftest import record
from tests.conftest import ADMIN_EMAIL, TenantWorld

PATIENT = uuid.UUID("01900000-0000-7000-8000-0000000000ad")
CHANGELIST = "/admin/audit/auditevent/"


def _admin(world: TenantWorld) -> Client:
    client = Client(HTTP_HOST=world.host)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": ADMIN_EMAIL, "password": world.password}
    )
    assert response.status_code == 302, response.content[:500]
    return client


@pytest.fixture
def event(alpha: TenantWorld) -> AuditEvent:
    with tenant_context(alpha.tenant):
        return record(
            object_ids=[PATIENT], actor_email="clinician@example.com", changed_fields=["phone"]
        )


def test_changelist_and_detail_are_read_only(alpha: TenantWorld, event: AuditEvent) -> None:
    client = _admin(alpha)
    page = client.get(CHANGELIST)
    assert page.status_code == 200
    assert b"clinician@example.com" in page.content
    assert f"{CHANGELIST}add/".encode() not in page.content  # no "Add audit event" button
    assert b'name="action"' not in page.content  # no bulk actions (delete selected)

    detail = client.get(f"{CHANGELIST}{event.pk}/change/")
    assert detail.status_code == 200
    assert str(PATIENT).encode() in detail.content
    assert b'name="_save"' not in detail.content
    assert b'name="_continue"' not in detail.content
    assert f"{CHANGELIST}{event.pk}/delete/".encode() not in detail.content


def test_filters_search_and_date_hierarchy_work(alpha: TenantWorld, event: AuditEvent) -> None:
    client = _admin(alpha)
    for query in (
        "?action__exact=read",
        "?allowed__exact=1",
        "?object_type=clinical.patient",
        "?q=clinician%40example.com",
        f"?occurred_at__year={event.occurred_at.year}",
    ):
        page = client.get(CHANGELIST + query)
        assert page.status_code == 200, query
        assert b"clinician@example.com" in page.content, query
    assert b"clinician@example.com" not in client.get(CHANGELIST + "?action__exact=delete").content


def test_posting_a_change_is_refused(alpha: TenantWorld, event: AuditEvent) -> None:
    response = _admin(alpha).post(
        f"{CHANGELIST}{event.pk}/change/",
        {"action": "delete", "object_type": "x.y", "allowed": "", "_save": "Save"},
    )
    assert response.status_code == 403
    with tenant_context(alpha.tenant):
        stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.action, stored.object_type, stored.allowed) == ("read", "clinical.patient", True)


def test_delete_and_add_are_refused(alpha: TenantWorld, event: AuditEvent) -> None:
    client = _admin(alpha)
    assert client.get(f"{CHANGELIST}{event.pk}/delete/").status_code == 403
    assert client.post(f"{CHANGELIST}{event.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [str(event.pk)]}
    )
    assert bulk.status_code == 200  # no actions exist: the POST just renders the list
    assert client.get(f"{CHANGELIST}add/").status_code == 403
    with tenant_context(alpha.tenant):
        # The admin's own login is on the trail too (issue 21); nothing else was added or removed.
        kept = AuditEvent.objects.exclude(action=AuditEvent.Action.LOGIN)
        assert list(kept.values_list("pk", flat=True)) == [event.pk]


def test_other_tenants_events_are_not_in_the_admin(
    alpha: TenantWorld, beta: TenantWorld, event: AuditEvent
) -> None:
    page = _admin(beta).get(CHANGELIST)
    assert page.status_code == 200
    assert b"clinician@example.com" not in page.content
    assert _admin(beta).get(f"{CHANGELIST}{event.pk}/change/").status_code == 302  # "not found"


def test_platform_operators_public_admin_does_not_offer_it(db: None) -> None:
    with schema_context("public"):
        User.objects.create_superuser("ops@verdant.example", "ops-Password-77")
    client = Client(HTTP_HOST="verdant.test")
    login = client.post(
        "/admin/login/?next=/admin/",
        {"username": "ops@verdant.example", "password": "ops-Password-77"},
    )
    assert login.status_code == 302
    index = client.get("/admin/")
    assert index.status_code == 200
    assert b"Audit trail" not in index.content
    assert client.get(CHANGELIST).status_code == 404
