"""audit.admin_audit's helpers: the ids the trail records for non-UUID keys, and the changed
fields a change message names (tests/security/test_admin_audit.py drives the admin itself)."""

from __future__ import annotations

import datetime as dt
import uuid

from django.test import override_settings

from audit.admin_audit import AdminChangeMessage, audit_object_id, message_field_names

PHONE = "+4915112345678"


def test_uuid_keys_are_kept_and_integer_keys_read_back() -> None:
    key = uuid.UUID("01900000-0000-7000-8000-0000000000ad")
    assert audit_object_id(object_type="clinical.patient", pk=key) == key
    assert audit_object_id(object_type="tenants.tenant", pk=42) == uuid.UUID(
        "00000000-0000-0000-0000-00000000002a"
    )
    assert audit_object_id(object_type="tenants.tenant", pk=42).int == 42


def test_other_keys_are_a_keyed_digest_without_the_key() -> None:
    first = audit_object_id(object_type="notify.optout", pk=PHONE)
    assert first == audit_object_id(object_type="notify.optout", pk=PHONE)  # findable
    assert first != audit_object_id(object_type="notify.consentevent", pk=PHONE)
    assert "15112345678" not in str(first)
    day = audit_object_id(object_type="notify.dailyusage", pk=dt.date(2026, 5, 1))
    assert day != audit_object_id(object_type="notify.dailyusage", pk=dt.date(2026, 5, 2))
    with override_settings(SECRET_KEY="another-" + "k" * 60):
        assert audit_object_id(object_type="notify.optout", pk=PHONE) != first


def test_change_messages_name_fields() -> None:
    django_message = [{"changed": {"fields": ["Given name", "Phone"]}}]
    carried = AdminChangeMessage(django_message, field_names=["given_name", "phone"])
    assert list(carried) == django_message  # LogEntry stores what Django built
    assert message_field_names(message=carried) == ["given_name", "phone"]
    # Built elsewhere: the labels of the object's own entry, not of inline rows.
    inline = {"changed": {"name": "item", "object": "Amoxicillin", "fields": ["Dose"]}}
    assert message_field_names(message=[*django_message, inline]) == ["Given name", "Phone"]
    assert message_field_names(message="Changed something.") == []
