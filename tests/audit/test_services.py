"""audit_event_record and friends: one INSERT per call, names never values, clean context."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from accounts.models import User
from audit import selectors, services
from audit.models import AuditEvent
from tests.audit.conftest import context_for, data_statements, record
from tests.conftest import ADMIN_EMAIL, CLINICIAN_ID, TenantWorld

PATIENT_A = uuid.UUID("01900000-0000-7000-8000-00000000000a")
PATIENT_B = uuid.UUID("01900000-0000-7000-8000-00000000000b")


def test_records_every_field_and_reads_it_back(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        event = services.audit_event_record(
            context=context_for(actor_id=CLINICIAN_ID, actor_email="clinician@example.com"),
            action=AuditEvent.Action.UPDATE,
            object_type="clinical.patient",
            object_ids=[str(PATIENT_A)],
            changed_fields=["phone", "sms_consent", "phone"],
        )
        stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_id == CLINICIAN_ID
    assert stored.actor_email == "clinician@example.com"
    assert stored.action == "update"
    assert stored.allowed is True
    assert stored.object_type == "clinical.patient"
    assert stored.object_ids == [PATIENT_A]
    assert stored.changed_fields == ["phone", "sms_consent"]
    assert stored.ip == "203.0.113.7"
    assert stored.user_agent == "pytest-agent/1.0"
    assert stored.request_id == "req-00000001"
    assert stored.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert stored.occurred_at is not None
    assert stored.id.version == 7


def test_one_insert_and_nothing_else(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant), CaptureQueriesContext(connection) as queries:
        record(object_ids=[PATIENT_A])
    statements = data_statements(queries)
    assert len(statements) == 1
    assert statements[0].startswith('INSERT INTO "audit_auditevent"')


def test_system_events_have_no_actor(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        event = services.audit_event_record(
            context=None, action="export", object_type="clinical.patient"
        )
        stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor_id, stored.actor_email, stored.ip) == (None, "", None)
    assert (stored.user_agent, stored.request_id, stored.trace_id) == ("", "", "")
    assert stored.object_ids == []


def test_an_unparseable_client_address_is_stored_as_null(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        event = services.audit_event_record(
            context=context_for(ip="not-an-ip"), action="read", object_type="accounts.user"
        )
        ipv6 = services.audit_event_record(
            context=context_for(ip=" 2001:db8::1 "), action="read", object_type="accounts.user"
        )
        assert AuditEvent.objects.get(pk=event.pk).ip is None
        assert AuditEvent.objects.get(pk=ipv6.pk).ip == "2001:db8::1"


def test_overlong_context_values_are_truncated(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        event = services.audit_event_record(
            context=context_for(user_agent="u" * 1000, request_id="r" * 500, trace_id="t" * 99),
            action="read",
            object_type="accounts.user",
        )
        stored = AuditEvent.objects.get(pk=event.pk)
    assert (len(stored.user_agent), len(stored.request_id), len(stored.trace_id)) == (400, 128, 64)


def test_unknown_action_is_refused_and_nothing_is_written(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        with pytest.raises(ValueError, match="Unknown audit action 'peek'"):
            services.audit_event_record(context=None, action="peek", object_type="x.y")
        assert AuditEvent.objects.count() == 0


@pytest.mark.parametrize("bad", ["", "x" * 101, 42])
def test_changed_fields_must_be_names(alpha: TenantWorld, bad: object) -> None:
    with tenant_context(alpha.tenant):
        with pytest.raises(ValueError, match="field names, not values"):
            services.audit_event_record(
                context=None,
                action="update",
                object_type="clinical.patient",
                changed_fields=[bad],  # type: ignore[list-item]
            )
        assert AuditEvent.objects.count() == 0


def test_a_list_read_is_one_row_holding_every_id(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        users = list(User.objects.order_by("email"))
        with CaptureQueriesContext(connection) as queries:
            event = services.audit_read_record(context=context_for(), model=User, objects=users)
        assert len(data_statements(queries)) == 1
        assert AuditEvent.objects.count() == 1
        assert AuditEvent.objects.get().object_ids == [user.pk for user in users]
    assert event.action == "read"
    assert event.object_type == "accounts.user"
    assert len(event.object_ids) == 2


def test_write_and_denied_helpers(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        admin = User.objects.get(email=ADMIN_EMAIL)
        write = services.audit_write_record(
            context=context_for(),
            action="update",
            instance=admin,
            changed_fields=services.audit_changed_fields(
                instance=admin, changes={"full_name": "New name", "role": admin.role}
            ),
        )
        denied = services.audit_denied_record(
            context=context_for(actor_id=CLINICIAN_ID),
            action=services.audit_action_for_method("DELETE") or "",
            model=User,
            object_ids=[admin.pk],
        )
    assert (write.object_type, write.object_ids, write.changed_fields) == (
        "accounts.user",
        [admin.pk],
        ["full_name"],
    )
    assert write.allowed is True
    assert (denied.action, denied.allowed, denied.object_ids) == ("delete", False, [admin.pk])


def test_object_type_and_read_marking() -> None:
    assert services.audit_object_type(User) == "accounts.user"
    assert services.audit_object_type(AuditEvent()) == "audit.auditevent"
    assert services.audit_reads_required(User) is False
    assert services.audit_action_for_method("get") == "read"
    assert services.audit_action_for_method("OPTIONS") is None


def test_selector_filters(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        first = record(object_ids=[PATIENT_A, PATIENT_B], actor_id=CLINICIAN_ID)
        second = record(action="delete", object_ids=[PATIENT_B], allowed=False)
        third = record(object_type="accounts.user", object_ids=[CLINICIAN_ID])

        def ids(**filters: object) -> list[uuid.UUID]:
            return [event.pk for event in selectors.audit_event_list(**filters)]  # type: ignore[arg-type]

        assert ids() == [third.pk, second.pk, first.pk]
        assert ids(object_id=PATIENT_B) == [second.pk, first.pk]
        assert ids(object_id=PATIENT_A) == [first.pk]
        assert ids(actor_id=CLINICIAN_ID) == [first.pk]
        assert ids(action="delete") == [second.pk]
        assert ids(allowed=False) == [second.pk]
        assert ids(object_type="accounts.user") == [third.pk]
        assert ids(occurred_after=second.occurred_at) == [third.pk, second.pk]
        assert ids(occurred_before=second.occurred_at) == [first.pk]
