"""Reminder settings by API (issue 19, item 4): GET/PUT ``clinical/reminders/settings/`` for
tenant_admin, a template preview with made-up data, ETag / If-Match / body ``version``, audited
writes, and one rule set: the admin form refuses exactly what the API refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.roles import Role
from audit.models import AuditEvent
from clinical.admin import ReminderSettingsForm
from clinical.models import DEFAULT_REMINDER_TEMPLATE, ReminderMessage, ReminderSettings
from clinical.reminders.rules import (
    KINDS_INVALID,
    QUIET_TIME_PRECISION,
    SMS_MAX_CHARS,
    TEMPLATE_BLANK,
    TEMPLATE_BROKEN,
    TEMPLATE_FIELDS,
    TEMPLATE_INVALID,
    TEMPLATE_TOO_LONG,
    quiet_hours_end,
    rules_load,
)
from tests.clinical.conftest import STAFF_PASSWORD, Clinic, make_user
from tests.clinical.test_reminders import book, rows
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL, TenantWorld, login
from tests.query_budget import count_queries

pytestmark = pytest.mark.django_db

URL = "/api/v1/clinical/reminders/settings/"
PREVIEW = "/api/v1/clinical/reminders/settings/preview/"
DEFAULT_KINDS = [
    {"kind": "day_before", "minutes_before": 1440},
    {"kind": "two_hours", "minutes_before": 120},
]
VALID: dict[str, Any] = {
    "enabled": True,
    "kinds": [
        {"kind": "week_before", "minutes_before": 10080},
        {"kind": "soon", "minutes_before": 60},
    ],
    "template": "Hello {patient_given_name}: {facility_name}, {local_date} {local_time} ({kind}).",
    "quiet_start": "22:30",
    "quiet_end": "06:15",
}


def put(client: APIClient, body: dict[str, Any], **headers: Any) -> Any:
    return client.put(URL, body, format="json", **headers)


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


# --- reading and writing -----------------------------------------------------------------------


def test_a_tenant_that_never_saved_gets_the_defaults_at_version_0(alpha: TenantWorld) -> None:
    response = login(alpha).get(URL)
    assert response.status_code == 200
    assert response["ETag"] == 'W/"0"'
    assert response.json() == {
        "id": None,
        "enabled": True,
        "kinds": DEFAULT_KINDS,
        "template": DEFAULT_REMINDER_TEMPLATE,
        "quiet_start": "21:00",
        "quiet_end": "07:00",
        "version": 0,
        "updated_at": None,
    }
    with tenant_context(alpha.tenant):
        assert ReminderSettings.objects.count() == 0  # a GET writes nothing


def test_put_creates_then_replaces_with_versions_and_etags(alpha: TenantWorld) -> None:
    admin = login(alpha)
    created = put(admin, VALID, HTTP_IF_MATCH='W/"0"')
    assert created.status_code == 200, created.content
    body = created.json()
    assert created["ETag"] == 'W/"1"'
    assert {k: body[k] for k in VALID} == VALID
    assert body["version"] == 1
    assert body["id"] is not None
    assert admin.get(URL, HTTP_IF_NONE_MATCH='W/"1"').status_code == 304

    changed = put(admin, {**VALID, "enabled": False, "version": 1})
    assert changed.status_code == 200
    assert changed.json()["version"] == 2
    assert changed.json()["enabled"] is False
    assert changed.json()["id"] == body["id"]
    assert admin.get(URL, HTTP_IF_NONE_MATCH='W/"1"').status_code == 200
    with tenant_context(alpha.tenant):
        row = ReminderSettings.objects.get()
        assert (row.version, row.enabled, row.quiet_start) == (2, False, time(22, 30))
        assert row.updated_by is not None
        assert row.updated_by.email == ADMIN_EMAIL


def test_stale_if_match_is_412_and_stale_body_version_409_and_nothing_changes(
    alpha: TenantWorld,
) -> None:
    admin = login(alpha)
    assert put(admin, VALID).status_code == 200
    stale = put(admin, {**VALID, "enabled": False}, HTTP_IF_MATCH='W/"0"')
    assert stale.status_code == 412
    assert error(stale)["code"] == "precondition_failed"
    conflict = put(admin, {**VALID, "enabled": False, "version": 0})
    assert conflict.status_code == 409
    assert error(conflict)["code"] == "version_conflict"
    with tenant_context(alpha.tenant):
        assert ReminderSettings.objects.get().enabled is True


def test_the_first_save_must_not_claim_a_version_that_never_existed(alpha: TenantWorld) -> None:
    response = put(login(alpha), {**VALID, "version": 3})
    assert response.status_code == 409
    assert error(response)["code"] == "version_conflict"
    with tenant_context(alpha.tenant):
        assert ReminderSettings.objects.count() == 0


def test_kinds_are_stored_as_parsed(alpha: TenantWorld) -> None:
    kinds = [{"kind": "soon", "minutes_before": 30, "note": "dropped"}]
    response = put(login(alpha), {**VALID, "kinds": kinds})
    assert response.status_code == 200
    assert response.json()["kinds"] == [{"kind": "soon", "minutes_before": 30}]


def test_a_write_is_audited_with_the_changed_field_names_only(alpha: TenantWorld) -> None:
    admin = login(alpha)
    put(admin, VALID)
    put(admin, {**VALID, "template": "Hi {patient_given_name}", "quiet_end": "06:45"})
    with tenant_context(alpha.tenant):
        row = ReminderSettings.objects.get()
        events = list(
            AuditEvent.objects.filter(object_type="clinical.remindersettings").order_by("id")
        )
    assert [(e.action, e.allowed, e.object_ids, e.actor_email) for e in events] == [
        ("update", True, [row.pk], ADMIN_EMAIL),
        ("update", True, [row.pk], ADMIN_EMAIL),
    ]
    assert sorted(events[0].changed_fields) == ["kinds", "quiet_end", "quiet_start", "template"]
    assert sorted(events[1].changed_fields) == ["quiet_end", "template"]


def test_get_costs_a_fixed_number_of_queries(alpha: TenantWorld) -> None:
    admin = login(alpha)
    admin.get(URL)  # warm the routing and user caches
    response, queries = count_queries(lambda: admin.get(URL))
    assert response.status_code == 200
    # The tenant's search_path, the token's user, the settings row: nothing per kind, no audit.
    assert len(queries) == 3, "\n".join(queries)
    put(admin, VALID)
    response, queries = count_queries(lambda: admin.get(URL))
    assert response.json()["version"] == 1
    assert len(queries) == 3, "\n".join(queries)


# --- tenants -----------------------------------------------------------------------------------


def test_colliding_tenants_never_see_or_change_each_others_settings(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    alpha_admin, beta_admin = login(alpha), login(beta)
    assert put(alpha_admin, VALID).status_code == 200
    # Same admin email, same version numbers: beta still has its defaults.
    assert beta_admin.get(URL).json()["version"] == 0
    assert beta_admin.get(URL).json()["template"] == DEFAULT_REMINDER_TEMPLATE
    # Alpha's ETag means nothing on beta's host.
    refused = put(beta_admin, {**VALID, "enabled": False}, HTTP_IF_MATCH='W/"1"')
    assert refused.status_code == 412
    assert put(beta_admin, {**VALID, "template": "Beta {kind}"}).status_code == 200
    assert alpha_admin.get(URL).json()["template"] == VALID["template"]
    assert alpha_admin.get(URL).json()["version"] == 1
    # Alpha's token on beta's host is refused before any view runs.
    token = alpha.client().post(
        "/api/v1/auth/token/", {"email": ADMIN_EMAIL, "password": alpha.password}, format="json"
    )
    stolen = beta.client()
    stolen.credentials(HTTP_AUTHORIZATION=f"Bearer {token.json()['access']}")
    for response in (stolen.get(URL), put(stolen, VALID), stolen.post(PREVIEW, {}, format="json")):
        assert response.status_code == 401
    with tenant_context(beta.tenant):
        assert ReminderSettings.objects.get().template == "Beta {kind}"
    with tenant_context(alpha.tenant):
        assert ReminderSettings.objects.get().template == VALID["template"]


def test_admin_edits_stay_in_their_tenant(alpha: TenantWorld, beta: TenantWorld) -> None:
    client = admin_client(alpha)
    response = client.post("/admin/clinical/remindersettings/add/", admin_data(VALID))
    assert response.status_code == 302, response.content
    assert login(beta).get(URL).json()["version"] == 0
    assert login(alpha).get(URL).json()["quiet_start"] == "22:30"


# --- roles -------------------------------------------------------------------------------------

OTHER_ROLES = [r for r in Role.values if r != Role.TENANT_ADMIN]


@pytest.mark.parametrize("role", OTHER_ROLES)
def test_only_tenant_admins_read_write_or_preview(alpha: TenantWorld, role: str) -> None:
    email = f"{role}-settings@example.com"
    with tenant_context(alpha.tenant):
        make_user(email=email, role=role)
    client = login(alpha, email=email, password=STAFF_PASSWORD)
    for response in (
        client.get(URL),
        put(client, VALID),
        client.post(PREVIEW, {"template": "{kind}"}, format="json"),
    ):
        assert response.status_code == 403
        assert error(response)["code"] == "permission_denied"
    with tenant_context(alpha.tenant):
        assert ReminderSettings.objects.count() == 0
        denied = AuditEvent.objects.filter(allowed=False, actor_email=email)
        assert sorted(denied.values_list("action", flat=True)) == ["read", "update"]


def test_anonymous_is_401_everywhere(alpha: TenantWorld) -> None:
    client = alpha.client()
    for response in (client.get(URL), put(client, VALID), client.post(PREVIEW, {}, format="json")):
        assert response.status_code == 401
        assert "error" in response.json()


def test_the_preview_answers_post_only(alpha: TenantWorld) -> None:
    admin = login(alpha)
    response = admin.get(PREVIEW)
    assert response.status_code == 405
    assert error(response)["code"] == "method_not_allowed"


# --- one rule set: the API and the admin form refuse the same input ----------------------------

FIELDS_LIST = ", ".join(sorted(TEMPLATE_FIELDS))

# (field, value, the message both give, or None where each layer's own parser words it)
INVALID = [
    ("kinds", "day_before", KINDS_INVALID),
    ("kinds", {"kind": "x", "minutes_before": 5}, KINDS_INVALID),
    ("kinds", None, KINDS_INVALID),
    ("kinds", [{"kind": "a", "minutes_before": 0}], KINDS_INVALID),
    ("kinds", [{"kind": "a", "minutes_before": 43201}], KINDS_INVALID),
    ("kinds", [{"kind": "a", "minutes_before": True}], KINDS_INVALID),
    ("kinds", [{"kind": "a", "minutes_before": "60"}], KINDS_INVALID),
    ("kinds", [{"kind": "a"}], KINDS_INVALID),
    ("kinds", [{"kind": "", "minutes_before": 5}], KINDS_INVALID),
    ("kinds", [{"kind": "k" * 33, "minutes_before": 5}], KINDS_INVALID),
    (
        "kinds",
        [{"kind": "a", "minutes_before": 5}, {"kind": "a", "minutes_before": 6}],
        KINDS_INVALID,
    ),
    (
        "kinds",
        [{"kind": "a", "minutes_before": 5}, {"kind": "b", "minutes_before": 5}],
        KINDS_INVALID,
    ),
    (
        "template",
        "Hi {patient_phone}",
        TEMPLATE_INVALID.format(name="patient_phone", choices=FIELDS_LIST),
    ),
    ("template", "Hi {}", TEMPLATE_INVALID.format(name="", choices=FIELDS_LIST)),
    (
        "template",
        "Hi {kind.upper}",
        TEMPLATE_INVALID.format(name="kind.upper", choices=FIELDS_LIST),
    ),
    ("template", "Hi {kind", TEMPLATE_BROKEN.format(error="expected '}' before end of string")),
    ("template", "Hi }", TEMPLATE_BROKEN.format(error="Single '}' encountered in format string")),
    (
        "template",
        "At {local_time:d}",
        TEMPLATE_BROKEN.format(error="Unknown format code 'd' for object of type 'str'"),
    ),
    (
        "template",
        "Hi {kind!x}",
        TEMPLATE_BROKEN.format(error="Unknown conversion specifier x"),
    ),
    ("template", "", TEMPLATE_BLANK),
    ("template", "   ", TEMPLATE_BLANK),
    ("template", "x" * (SMS_MAX_CHARS + 1), TEMPLATE_TOO_LONG.format(max=SMS_MAX_CHARS)),
    ("quiet_start", "21:00:30", QUIET_TIME_PRECISION),
    ("quiet_end", "06:59:59.5", QUIET_TIME_PRECISION),
    ("quiet_start", "25:00", None),
    ("quiet_end", "21:00+02:00", None),
    ("quiet_end", "soon", None),
]


def admin_data(body: dict[str, Any]) -> dict[str, Any]:
    """The settings as the admin's change form posts them."""
    data = {k: v for k, v in body.items() if k != "enabled"}
    data["kinds"] = json.dumps(body["kinds"])
    if body.get("enabled"):
        data["enabled"] = "on"
    return data


def admin_client(world: TenantWorld) -> Client:
    client = Client(HTTP_HOST=world.host)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": ADMIN_EMAIL, "password": world.password}
    )
    assert response.status_code == 302
    return client


@pytest.mark.parametrize(("field", "value", "message"), INVALID)
def test_the_admin_form_refuses_exactly_what_the_api_refuses(
    alpha: TenantWorld, field: str, value: Any, message: str | None
) -> None:
    body = {**VALID, field: value}
    response = put(login(alpha), body)
    assert response.status_code == 400
    api_fields = error(response)["fields"]
    assert list(api_fields) == [field]
    with tenant_context(alpha.tenant):
        form = ReminderSettingsForm(data=admin_data(body))
        assert not form.is_valid()
        assert list(form.errors) == [field]
        if message is not None:
            assert api_fields[field] == [message]
            assert form.errors[field] == [message]
        assert ReminderSettings.objects.count() == 0


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"kinds": []},
        {"quiet_start": "00:00", "quiet_end": "00:00"},
        {"quiet_start": "23:59", "quiet_end": "00:01"},
        {"quiet_start": "06:00:00", "quiet_end": "08:00"},
        {"template": "x" * SMS_MAX_CHARS},
        {"template": "No placeholders at all, {{braces}} escaped."},
        {"enabled": False},
    ],
)
def test_the_admin_form_and_the_api_accept_the_same_input(
    alpha: TenantWorld, change: dict[str, Any]
) -> None:
    body = {**VALID, **change}
    with tenant_context(alpha.tenant):
        form = ReminderSettingsForm(data=admin_data(body))
        assert form.is_valid(), form.errors
    response = put(login(alpha), body)
    assert response.status_code == 200, response.content


def test_the_admin_change_view_saves_through_the_service_and_bumps_the_version(
    alpha: TenantWorld,
) -> None:
    admin = login(alpha)
    put(admin, VALID)
    with tenant_context(alpha.tenant):
        row = ReminderSettings.objects.get()
    client = admin_client(alpha)
    path = f"/admin/clinical/remindersettings/{row.pk}/change/"
    refused = client.post(path, admin_data({**VALID, "template": "Hi {patient_phone}"}))
    assert refused.status_code == 200  # the form again, with the rule's message
    assert "Unknown placeholder" in refused.content.decode()
    saved = client.post(path, admin_data({**VALID, "enabled": False}))
    assert saved.status_code == 302
    current = admin.get(URL)
    assert current.json()["version"] == 2
    assert current.json()["enabled"] is False
    assert current["ETag"] == 'W/"2"'
    # An API client holding version 1 no longer overwrites the admin's edit.
    assert put(admin, VALID, HTTP_IF_MATCH='W/"1"').status_code == 412
    # One settings row per tenant: no second "add" in the admin.
    assert client.get("/admin/clinical/remindersettings/add/").status_code == 403


# --- effects -----------------------------------------------------------------------------------


def test_quiet_hours_crossing_midnight_are_saved_and_applied(alpha: TenantWorld) -> None:
    put(login(alpha), {**VALID, "quiet_start": "22:30", "quiet_end": "06:15"})
    with tenant_context(alpha.tenant):
        rules = rules_load()
    assert (rules.quiet_start, rules.quiet_end) == (time(22, 30), time(6, 15))
    zone = "Europe/Berlin"  # UTC+1 in January
    late = datetime(2031, 1, 10, 22, 45, tzinfo=UTC)  # 23:45 local: inside, before midnight
    early = datetime(2031, 1, 11, 4, 0, tzinfo=UTC)  # 05:00 local: inside, after midnight
    noon = datetime(2031, 1, 11, 11, 0, tzinfo=UTC)
    window: dict[str, Any] = {
        "zone": zone,
        "quiet_start": rules.quiet_start,
        "quiet_end": rules.quiet_end,
    }
    assert quiet_hours_end(at=late, **window) == datetime(2031, 1, 11, 5, 15, tzinfo=UTC)
    assert quiet_hours_end(at=early, **window) == datetime(2031, 1, 11, 5, 15, tzinfo=UTC)
    assert quiet_hours_end(at=noon, **window) is None


def test_disabling_cancels_pending_reminders_and_new_kinds_replan_them(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=72)
        assert rows(appointment) == [
            ("day_before", "pending", ""),
            ("two_hours", "pending", ""),
        ]
    admin = login(clinic.world)
    assert put(admin, {**VALID, "kinds": DEFAULT_KINDS, "enabled": False}).status_code == 200
    with tenant_context(clinic.world.tenant):
        assert rows(appointment) == [
            ("day_before", "cancelled", "reminders_disabled"),
            ("two_hours", "cancelled", "reminders_disabled"),
        ]
    kinds = [{"kind": "soon", "minutes_before": 60}]
    assert put(admin, {**VALID, "kinds": kinds, "version": 1}).status_code == 200
    with tenant_context(clinic.world.tenant):
        assert rows(appointment) == [
            ("day_before", "cancelled", "reminders_disabled"),
            ("two_hours", "cancelled", "reminders_disabled"),
            ("soon", "pending", ""),
        ]


def test_a_template_change_alone_replans_nothing(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        book(clinic, hours_ahead=72)
        before = list(ReminderMessage.objects.values_list("id", "state", "updated_at"))
    put(login(clinic.world), {**VALID, "kinds": DEFAULT_KINDS})
    with tenant_context(clinic.world.tenant):
        after = list(ReminderMessage.objects.values_list("id", "state", "updated_at"))
    assert after == before


# --- preview -----------------------------------------------------------------------------------


def test_preview_renders_made_up_data_never_a_real_patients(clinic: Clinic) -> None:
    response = login(clinic.world).post(PREVIEW, {"template": VALID["template"]}, format="json")
    assert response.status_code == 200
    tomorrow = (timezone.now().astimezone(UTC) + timedelta(days=1)).strftime("%a %d %b %Y")
    text = f"Hello Alex: Sample Clinic, {tomorrow} 09:30 (day_before)."
    assert response.json() == {"text": text, "characters": len(text), "truncated": False}
    for real in ("Ada", "Lovelace", "Grace", "North", "South"):
        assert real not in response.json()["text"]
    with tenant_context(clinic.world.tenant):
        assert ReminderSettings.objects.count() == 0
        assert not AuditEvent.objects.filter(object_type="clinical.remindersettings").exists()


def test_preview_with_a_kind_and_cut_at_the_sms_limit(alpha: TenantWorld) -> None:
    admin = login(alpha)
    kind = admin.post(PREVIEW, {"template": "{kind}!", "kind": "week_before"}, format="json")
    assert kind.json() == {"text": "week_before!", "characters": 12, "truncated": False}
    # A template within the limit whose text is not: {local_date} (12) renders as 15 characters.
    long = "x" * (SMS_MAX_CHARS - 12) + "{local_date}"
    cut = admin.post(PREVIEW, {"template": long}, format="json").json()
    tomorrow = (timezone.now().astimezone(UTC) + timedelta(days=1)).strftime("%a %d %b %Y")
    assert cut == {
        "text": "x" * (SMS_MAX_CHARS - 12) + tomorrow[:12],
        "characters": SMS_MAX_CHARS,
        "truncated": True,
    }


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"template": "Hi {patient_phone}"}, "template", None),
        ({"template": "At {local_time:d}"}, "template", None),
        ({"template": ""}, "template", TEMPLATE_BLANK),
        ({}, "template", "This field is required."),
        ({"template": "{kind}", "kind": "k" * 33}, "kind", None),
        ({"template": "{kind}", "kind": ""}, "kind", None),
    ],
)
def test_preview_refuses_what_a_save_would_refuse(
    alpha: TenantWorld, body: dict[str, Any], field: str, message: str | None
) -> None:
    response = login(alpha).post(PREVIEW, body, format="json")
    assert response.status_code == 400
    assert error(response)["code"] == "validation_error"
    assert list(error(response)["fields"]) == [field]
    if message is not None:
        assert error(response)["fields"][field] == [message]


def test_a_clinician_sees_403_even_for_the_preview(alpha: TenantWorld) -> None:
    response = login(alpha, email=CLINICIAN_EMAIL).post(
        PREVIEW, {"template": "{kind}"}, format="json"
    )
    assert response.status_code == 403
