"""Issue 21, item 2: the Django admin path is on the audit trail, driven over HTTP like a browser
(a session, the CSRF token from the page, form posts of the values the page holds).

Reads of sensitive models (a patient's change page, a changelist page, the delete confirmations)
are one event per page with the ids shown; saves, deletes, inline rows, admin actions, guardian
grants and role and password changes are write events naming the changed fields (never values);
autocomplete over patients is refused. Tenant A's admin writes only A's trail (the two tenants
share ids and emails), the operators' admin writes the public schema's trail, and every model
admin of both sites is an audited one."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db.models import Model
from django.test import Client
from django_tenants.utils import schema_context
from guardian.admin import GuardedModelAdminMixin
from guardian.shortcuts import get_user_perms

from accounts.models import User
from apikit.ids import new_id
from apikit.tenancy import activate_public
from audit.admin_audit import AuditedGuardedModelAdmin, AuditedModelAdmin, audit_object_id
from audit.models import AuditEvent
from audit.public.models import PublicAuditEvent
from clinical.models import Facility, Patient, PrescriptionItem
from farms.models import Farm
from sync.models import Device
from tenants.admin import operator_site
from tenants.models import Plan, Tenant
from tests.security.admin_pages import form_values
from tests.security.admin_session import admin_session
from tests.security.conftest import SecurityWorld
from tests.security.world import SHARED, USER_IDS, Side

pytestmark = pytest.mark.security

PATIENT = SHARED["clinical.patient"]
PATIENT_2 = SHARED["clinical.patient#2"]  # no appointments, documents or prescriptions
FACILITY_2 = SHARED["clinical.facility#2"]
FARM_2 = SHARED["farms.farm#2"]
PRESCRIPTION = SHARED["clinical.prescription"]
NURSE = USER_IDS["nurse"]
AGRONOMIST = USER_IDS["agronomist"]
ADMIN = USER_IDS["tenant_admin"]
PATIENTS = "/admin/clinical/patient/"
NEW_PHONE = "+4915187654321"
# The admin hooks the audit lives in: the ones Django calls must be AuditedModelAdmin's (or an
# override in a subclass of it, which calls it).
AUDIT_HOOKS = (
    "changelist_view",
    "render_change_form",
    "render_delete_form",
    "history_view",
    "has_view_permission",
    "construct_change_message",
    "log_addition",
    "log_change",
    "log_deletions",
    "save_formset",
    "get_actions",
)
# Registered model admins that need not be audited, with the reason. None today: even the
# audit trail's own (read-only) admin is an AuditedModelAdmin.
AUDIT_EXEMPT: dict[type[Model], str] = {}


@pytest.fixture
def mark() -> uuid.UUID:
    """Events written after this id (UUIDv7, time-ordered) belong to the test."""
    return new_id()


def _events(side: Side, mark: uuid.UUID, **filters: Any) -> list[AuditEvent]:
    with schema_context(side.schema):
        return list(AuditEvent.objects.filter(id__gt=mark, **filters).order_by("id"))


def _written(side: Side, mark: uuid.UUID) -> list[AuditEvent]:
    """The test's events, the admin's own login aside."""
    return [e for e in _events(side, mark) if e.action != AuditEvent.Action.LOGIN]


def _one(side: Side, mark: uuid.UUID, **filters: Any) -> AuditEvent:
    found = _events(side, mark, **filters)
    assert len(found) == 1, [(e.action, e.object_type, e.object_ids) for e in _events(side, mark)]
    return found[0]


def _submit(
    browser: Client, path: str, *, changes: dict[str, Any] | None = None, **extra: Any
) -> Any:
    """GET the admin form at ``path`` and POST back what it holds, with ``changes``."""
    page = browser.get(path)
    assert page.status_code == 200, (path, page.status_code)
    data: dict[str, Any] = {**form_values(page.content.decode()), **(changes or {})}
    return browser.post(path, data, **extra)


def _post_action(browser: Client, changelist: str, action: str, ids: list[Any], **more: str) -> Any:
    token = form_values(browser.get(changelist).content.decode(), form_id="changelist-form")
    return browser.post(
        changelist,
        {
            "csrfmiddlewaretoken": token["csrfmiddlewaretoken"],
            "action": action,
            "index": "0",
            "_selected_action": [str(pk) for pk in ids],
            **more,
        },
    )


def _no_value_recorded(event: AuditEvent, *values: str) -> None:
    text = repr([getattr(event, f.name) for f in AuditEvent._meta.concrete_fields])
    for value in values:
        assert value not in text


@pytest.fixture
def browser(sw: SecurityWorld) -> Iterator[Client]:
    """Tenant A's admin, signed in as its tenant_admin."""
    yield admin_session(sw.a)
    activate_public()


# --- reads ----------------------------------------------------------------------------------------


def test_patient_change_page_is_one_read_with_its_id(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    page = browser.get(f"{PATIENTS}{PATIENT}/change/")
    assert page.status_code == 200
    assert "+4915112345678" in page.content.decode()  # the phone number is on the page
    event = _one(sw.a, mark, action=AuditEvent.Action.READ)
    assert (event.object_type, event.object_ids) == ("clinical.patient", [PATIENT])
    assert (event.actor_id, event.actor_email) == (ADMIN, "admin@example.com")
    assert event.allowed


def test_history_page_is_a_read_too(sw: SecurityWorld, browser: Client, mark: uuid.UUID) -> None:
    # Its title is the patient's name and number.
    assert browser.get(f"{PATIENTS}{PATIENT}/history/").status_code == 200
    event = _one(sw.a, mark, action=AuditEvent.Action.READ)
    assert (event.object_type, event.object_ids) == ("clinical.patient", [PATIENT])


def test_changelist_page_is_one_read_with_the_ids_of_the_page(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    assert browser.get(PATIENTS).status_code == 200
    event = _one(sw.a, mark, action=AuditEvent.Action.READ)
    assert event.object_type == "clinical.patient"
    assert sorted(event.object_ids) == sorted([PATIENT, PATIENT_2])

    # A search and a raw-id lookup popup are changelist pages too.
    later = new_id()
    assert browser.get(f"{PATIENTS}?q=Hopper").status_code == 200
    assert browser.get(f"{PATIENTS}?_popup=1&_to_field=id").status_code == 200
    pages = _events(sw.a, later, action=AuditEvent.Action.READ)
    assert [sorted(e.object_ids) for e in pages] == [[PATIENT_2], sorted([PATIENT, PATIENT_2])]


def test_change_page_inline_rows_are_read_too(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    with schema_context(sw.a.schema):
        items = list(PrescriptionItem.objects.filter(prescription_id=PRESCRIPTION))
    assert browser.get(f"/admin/clinical/prescription/{PRESCRIPTION}/change/").status_code == 200
    reads = _events(sw.a, mark, action=AuditEvent.Action.READ)
    assert {(e.object_type, tuple(e.object_ids)) for e in reads} == {
        ("clinical.prescription", (PRESCRIPTION,)),
        ("clinical.prescriptionitem", tuple(item.pk for item in items)),
    }


def test_autocomplete_over_patients_is_refused(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    # It searches every search field, the phone number included, and answers names.
    for term in ("Lovelace", "+4915112345678"):
        refused = browser.get(
            "/admin/autocomplete/",
            {
                "app_label": "clinical",
                "model_name": "appointment",
                "field_name": "patient",
                "term": term,
            },
        )
        assert refused.status_code == 403
        assert b"Lovelace" not in refused.content
    # A model that is not sensitive still completes (staff, from the patient's clinician field).
    staff = browser.get(
        "/admin/autocomplete/",
        {
            "app_label": "clinical",
            "model_name": "patient",
            "field_name": "assigned_clinician",
            "term": "clinician",
        },
    )
    assert staff.status_code == 200
    assert [row["id"] for row in staff.json()["results"]] == [str(USER_IDS["clinician"])]
    assert _written(sw.a, mark) == []


# --- writes ---------------------------------------------------------------------------------------


def test_saving_a_patient_is_an_update_naming_the_changed_fields(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    saved = _submit(
        browser,
        f"{PATIENTS}{PATIENT}/change/",
        changes={"given_name": "Renamed", "phone": NEW_PHONE},
    )
    assert saved.status_code == 302, saved.content[:2000]
    with schema_context(sw.a.schema):
        patient = Patient.objects.get(pk=PATIENT)
    assert (patient.phone, patient.version) == (NEW_PHONE, 2)
    update = _one(sw.a, mark, action=AuditEvent.Action.UPDATE)
    assert (update.object_type, update.object_ids) == ("clinical.patient", [PATIENT])
    assert update.changed_fields == ["given_name", "phone"]
    assert update.actor_id == ADMIN
    _no_value_recorded(update, "Renamed", NEW_PHONE, "87654321")


def test_inline_rows_are_events_of_their_own(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    with schema_context(sw.a.schema):
        item = PrescriptionItem.objects.get(prescription_id=PRESCRIPTION)
    saved = _submit(
        browser,
        f"/admin/clinical/prescription/{PRESCRIPTION}/change/",
        changes={"items-0-dose": "250 mg"},
    )
    assert saved.status_code == 302, saved.content[:2000]
    row = _one(sw.a, mark, action=AuditEvent.Action.UPDATE, object_type="clinical.prescriptionitem")
    assert (row.object_ids, row.changed_fields) == ([item.pk], ["dose"])
    parent = _one(sw.a, mark, action=AuditEvent.Action.UPDATE, object_type="clinical.prescription")
    assert (parent.object_ids, parent.changed_fields) == ([PRESCRIPTION], ["items"])


def test_delete_confirmation_is_a_read_and_the_delete_an_event(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    path = f"{PATIENTS}{PATIENT_2}/delete/"
    confirmation = browser.get(path)
    assert confirmation.status_code == 200
    read = _one(sw.a, mark, action=AuditEvent.Action.READ)
    assert (read.object_type, read.object_ids) == ("clinical.patient", [PATIENT_2])

    deleted = browser.post(path, {**form_values(confirmation.content.decode()), "post": "yes"})
    assert deleted.status_code == 302
    with schema_context(sw.a.schema):
        assert not Patient.all_objects.filter(pk=PATIENT_2).exists()
    event = _one(sw.a, mark, action=AuditEvent.Action.DELETE)
    assert (event.object_type, event.object_ids) == ("clinical.patient", [PATIENT_2])


def test_bulk_delete_confirmation_is_a_read_and_the_deletes_one_event(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    confirmation = _post_action(browser, PATIENTS, "delete_selected", [PATIENT_2])
    assert confirmation.status_code == 200
    assert b"Are you sure" in confirmation.content
    read = _events(sw.a, mark, action=AuditEvent.Action.READ)[-1]  # after the changelist's own
    assert (read.object_type, read.object_ids) == ("clinical.patient", [PATIENT_2])

    done = _post_action(browser, PATIENTS, "delete_selected", [PATIENT_2], post="yes")
    assert done.status_code == 302
    event = _one(sw.a, mark, action=AuditEvent.Action.DELETE)
    assert (event.object_type, event.object_ids) == ("clinical.patient", [PATIENT_2])
    # The bulk delete is recorded by its deletions, not as an action of its own.
    assert not _events(sw.a, mark, action=AuditEvent.Action.UPDATE)


def test_a_custom_action_is_an_event_naming_it_and_the_ids(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    with schema_context(sw.a.schema):
        devices = [
            Device.objects.create(user_id=USER_IDS["field_agent"], name=name, platform="android")
            for name in ("lost phone", "lost tablet")
        ]
    done = _post_action(browser, "/admin/sync/device/", "revoke_devices", [d.pk for d in devices])
    assert done.status_code == 302
    with schema_context(sw.a.schema):
        assert (
            Device.objects.filter(revoked_at__isnull=True, pk__in=[d.pk for d in devices]).count()
            == 0
        )
    event = _one(sw.a, mark, action=AuditEvent.Action.UPDATE)
    assert event.object_type == "sync.device"
    assert sorted(event.object_ids) == sorted(d.pk for d in devices)
    assert event.changed_fields == ["action:revoke_devices"]


def test_a_role_change_and_a_password_change_are_audited(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    saved = _submit(browser, f"/admin/accounts/user/{NURSE}/change/", changes={"role": "clinician"})
    assert saved.status_code == 302, saved.content[:2000]
    with schema_context(sw.a.schema):
        assert User.objects.get(pk=NURSE).role == "clinician"
    role = _one(sw.a, mark, action=AuditEvent.Action.UPDATE)
    assert (role.object_type, role.object_ids, role.changed_fields) == (
        "accounts.user",
        [NURSE],
        ["role"],
    )

    later = new_id()
    secret = "Changed-Secret-Pass-9"
    changed = _submit(
        browser,
        f"/admin/accounts/user/{NURSE}/password/",
        changes={"password1": secret, "password2": secret},
    )
    assert changed.status_code == 302, changed.content[:2000]
    password = _one(sw.a, later, action=AuditEvent.Action.UPDATE)
    assert (password.object_ids, password.changed_fields) == ([NURSE], ["password"])
    _no_value_recorded(password, secret)


# --- guardian grants ------------------------------------------------------------------------------


def _user_perms(side: Side, container: Model, user_id: uuid.UUID) -> set[str]:
    with schema_context(side.schema):
        return set(get_user_perms(User.objects.get(pk=user_id), container))


def test_a_facility_grant_and_revoke_in_the_admin_are_permission_changes(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    path = f"/admin/clinical/facility/{FACILITY_2}/permissions/user-manage/{NURSE}/"
    with schema_context(sw.a.schema):
        facility = Facility.objects.get(pk=FACILITY_2)
    granted = _submit(browser, path, changes={"permissions": ["view_facility"]})
    assert granted.status_code == 302, granted.content[:2000]
    assert _user_perms(sw.a, facility, NURSE) == {"view_facility"}
    grant = _one(sw.a, mark, action=AuditEvent.Action.PERMISSION_CHANGE)
    assert (grant.object_type, grant.object_ids, grant.changed_fields) == (
        "clinical.facility",
        [FACILITY_2, NURSE],
        ["grant:view"],
    )

    later = new_id()
    revoked = _submit(browser, path, changes={"permissions": []})
    assert revoked.status_code == 302
    assert _user_perms(sw.a, facility, NURSE) == set()
    revoke = _one(sw.a, later, action=AuditEvent.Action.PERMISSION_CHANGE)
    assert (revoke.object_ids, revoke.changed_fields) == ([FACILITY_2, NURSE], ["revoke:view"])


def test_a_farm_grant_in_the_admin_goes_through_the_api_service(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    path = f"/admin/farms/farm/{FARM_2}/permissions/user-manage/{AGRONOMIST}/"
    granted = _submit(browser, path, changes={"permissions": ["manage_farm"]})
    assert granted.status_code == 302, granted.content[:2000]
    with schema_context(sw.a.schema):
        farm = Farm.objects.get(pk=FARM_2)
    # As the API's access/ endpoint: manage includes view.
    assert _user_perms(sw.a, farm, AGRONOMIST) == {"view_farm", "manage_farm"}
    grant = _one(sw.a, mark, action=AuditEvent.Action.PERMISSION_CHANGE)
    assert (grant.object_type, grant.object_ids, grant.changed_fields) == (
        "farms.farm",
        [FARM_2, AGRONOMIST],
        ["grant:manage"],
    )


def test_only_access_levels_to_active_staff_and_never_groups(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    base = f"/admin/clinical/facility/{FACILITY_2}/permissions"
    with schema_context(sw.a.schema):
        facility = Facility.objects.get(pk=FACILITY_2)
        group = Group.objects.create(name="night shift")
    # Model permissions are the role matrix's, not grants: not on offer.
    other = _submit(
        browser, f"{base}/user-manage/{NURSE}/", changes={"permissions": ["change_facility"]}
    )
    assert other.status_code == 200
    assert b"Select a valid choice" in other.content
    # A tenant admin sees every facility already.
    admin_grant = _submit(
        browser, f"{base}/user-manage/{ADMIN}/", changes={"permissions": ["view_facility"]}
    )
    assert admin_grant.status_code == 200
    assert b"not tenant admins" in admin_grant.content
    assert _user_perms(sw.a, facility, NURSE) == _user_perms(sw.a, facility, ADMIN) == set()
    # Access is by role and per-user grants, never by group.
    assert browser.get(f"{base}/group-manage/{group.pk}/").status_code == 403
    assert _written(sw.a, mark) == []


# --- tenants and the operators' host --------------------------------------------------------------


def test_tenant_a_admin_writes_only_a_trail(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    """Both tenants have a patient with this id and an admin with this email and id."""
    assert browser.get(f"{PATIENTS}{PATIENT}/change/").status_code == 200
    saved = _submit(browser, f"{PATIENTS}{PATIENT}/change/", changes={"phone": NEW_PHONE})
    assert saved.status_code == 302
    assert [e.action for e in _written(sw.a, mark)] == ["read", "read", "update"]
    assert _events(sw.b, mark) == []
    with schema_context(sw.b.schema):
        assert Patient.objects.get(pk=PATIENT).phone == "+4915112345678"

    # B's admin, same email and id, reading the same id, writes B's trail only.
    other = admin_session(sw.b)
    assert other.get(f"{PATIENTS}{PATIENT}/change/").status_code == 200
    activate_public()
    assert [e.object_ids for e in _written(sw.b, mark)] == [[PATIENT]]
    assert len(_written(sw.a, mark)) == 3


@pytest.fixture
def operator(db: None) -> Iterator[Client]:
    client = Client(HTTP_HOST="verdant.test", enforce_csrf_checks=True)
    with schema_context("public"):
        user = User.objects.create_superuser("ops@verdant.example", "ops-Password-77")
        client.force_login(user)
    yield client
    activate_public()


def test_the_operators_admin_writes_the_public_trail(
    sw: SecurityWorld, operator: Client, mark: uuid.UUID
) -> None:
    with schema_context("public"):
        plan = Plan.objects.create(name="audited-plan", max_users=5)
        tenant = Tenant.objects.get(slug=sw.a.slug)
    saved = _submit(operator, f"/admin/tenants/plan/{plan.pk}/change/", changes={"max_users": "7"})
    assert saved.status_code == 302, saved.content[:2000]
    done = _post_action(operator, "/admin/tenants/tenant/", "reactivate", [tenant.pk])
    assert done.status_code == 302
    # Provisioning works inside the new tenant's schema, and the event still lands in public.
    added = _submit(
        operator,
        "/admin/tenants/tenant/add/",
        changes={
            "slug": "sec-audited",
            "name": "Audited",
            "kind": "clinic",
            "plan": str(plan.pk),
            "admin_email": "boss@audited.example",
        },
    )
    assert added.status_code == 302, added.content[:2000]
    with schema_context("public"):
        events = list(PublicAuditEvent.objects.filter(id__gt=mark).order_by("id"))
        new_tenant = Tenant.objects.get(slug="sec-audited")
    assert [(e.action, e.object_type, e.object_ids, e.changed_fields) for e in events] == [
        (
            "update",
            "tenants.plan",
            [audit_object_id(object_type="tenants.plan", pk=plan.pk)],
            ["max_users"],
        ),
        ("update", "tenants.tenant", [uuid.UUID(int=tenant.pk)], ["action:reactivate"]),
        (
            "create",
            "tenants.tenant",
            [uuid.UUID(int=new_tenant.pk)],
            ["slug", "name", "kind", "plan", "admin_email"],
        ),
    ]
    assert {e.actor_email for e in events} == {"ops@verdant.example"}
    assert _events(sw.a, mark) == []
    with schema_context(new_tenant.schema_name):
        assert not AuditEvent.objects.exists()


# --- coverage -------------------------------------------------------------------------------------


SITES = {
    "tenant hosts": (admin.site, "clinical.Patient"),
    "operators": (operator_site, "tenants.Tenant"),
}


@pytest.mark.parametrize("site_key", list(SITES))
def test_every_registered_model_admin_is_audited(site_key: str) -> None:
    """Every model registered on the site (``get_models`` x ``is_registered``, both public), its
    admin an AuditedModelAdmin whose hooks are the ones Django calls, or exempt with a reason."""
    site, expected = SITES[site_key]
    registered = {
        model: site.get_model_admin(model)
        for model in apps.get_models()
        if site.is_registered(model)
    }
    assert expected in {model._meta.label for model in registered}
    uncovered = []
    for model, model_admin in registered.items():
        if model in AUDIT_EXEMPT:
            continue
        where = f"{model._meta.label} ({type(model_admin).__qualname__})"
        guarded = isinstance(model_admin, GuardedModelAdminMixin)
        if not isinstance(model_admin, AuditedModelAdmin):
            uncovered.append(f"{where} is not an AuditedModelAdmin")
            continue
        if guarded and not isinstance(model_admin, AuditedGuardedModelAdmin):
            uncovered.append(f"{where} has guardian's pages without AuditedGuardedModelAdmin")
        for hook in AUDIT_HOOKS:
            owner = next(k for k in type(model_admin).__mro__ if hook in vars(k))
            if not issubclass(owner, AuditedModelAdmin):
                uncovered.append(f"{where}.{hook} is {owner.__qualname__}'s, before the audit's")
    assert uncovered == []


def test_demoting_the_last_tenant_admin_is_a_form_error_and_logs_nothing(
    sw: SecurityWorld, browser: Client, mark: uuid.UUID
) -> None:
    """The rule of accounts.services.user_update, asked by the change form before anything is
    saved: the page shows the error and neither the user nor the trail records a change (it was
    a message after Django had already logged a role change that never happened)."""
    with schema_context(sw.a.schema):
        assert list(
            User.objects.filter(role="tenant_admin", is_active=True).values_list("pk", flat=True)
        ) == [ADMIN]
    refused = _submit(browser, f"/admin/accounts/user/{ADMIN}/change/", changes={"role": "nurse"})
    assert refused.status_code == 200
    assert "last active tenant admin" in refused.content.decode()
    with schema_context(sw.a.schema):
        assert User.objects.get(pk=ADMIN).role == "tenant_admin"
    assert _written(sw.a, mark) == []
