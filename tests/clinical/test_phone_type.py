"""Patient.phone_is_mobile: phonenumbers' MOBILE verdict stored with the phone by every write path
(API create/update, sync push create/update — tests/sync/test_push_patients.py —, admin, demo seed, the migration's backfill), and
read by the FHIR builder instead of parsing the number (issue 17: a third of an export's CPU)."""

from __future__ import annotations

import importlib
from types import SimpleNamespace
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context

from clinical import rules
from clinical.models import Patient
from tests.clinical.conftest import F1_ID, P1_ID, Clinic
from tests.conftest import ADMIN_EMAIL, login

MOBILE = "+4915123456789"  # DE mobile
LANDLINE = "+493012345678"  # DE fixed line
US = "+12025550123"  # FIXED_LINE_OR_MOBILE: not MOBILE
URL = "/api/v1/clinical/patients/"
FHIR = "/fhir/R4/Patient/"


def _stored(clinic: Clinic, pk: Any) -> tuple[str, bool | None]:
    with tenant_context(clinic.world.tenant):
        phone, is_mobile = Patient.all_objects.values_list("phone", "phone_is_mobile").get(pk=pk)
    return phone, is_mobile


def _telecom(client: Any, pk: Any) -> list[dict[str, str]] | None:
    response = client.get(f"{FHIR}{pk}", HTTP_ACCEPT="application/fhir+json")
    assert response.status_code == 200, response.content
    telecom: list[dict[str, str]] | None = response.json().get("telecom")
    return telecom


@pytest.mark.parametrize(
    ("phone", "expected"),
    [(MOBILE, True), (LANDLINE, False), (US, False), ("", None), ("not a number", False)],
)
def test_the_rule(phone: str, expected: bool | None) -> None:
    assert rules.phone_is_mobile(phone=phone) is expected


def test_api_create_and_update_store_the_verdict(clinic: Clinic) -> None:
    client = login(clinic.world)
    body = {
        "facility": str(clinic.f1.pk),
        "mrn": "MRN-PT-1",
        "given_name": "Mary",
        "family_name": "Seacole",
        "birth_date": "1975-11-23",
        "sex": "female",
        "phone": "+49 151 23456789",
    }
    created = client.post(URL, body, format="json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert _stored(clinic, pk) == (MOBILE, True)
    assert _telecom(client, pk) == [{"system": "phone", "value": MOBILE, "use": "mobile"}]

    for phone, expected in ((LANDLINE, False), (US, False), ("", None), (MOBILE, True)):
        version = client.get(f"{URL}{pk}/").json()["version"]
        patched = client.patch(f"{URL}{pk}/", {"phone": phone, "version": version}, format="json")
        assert patched.status_code == 200, patched.content
        assert _stored(clinic, pk) == (phone, expected)
    # A PATCH without the phone leaves the verdict alone.
    version = client.get(f"{URL}{pk}/").json()["version"]
    patched = client.patch(f"{URL}{pk}/", {"given_name": "M", "version": version}, format="json")
    assert patched.status_code == 200, patched.content
    assert _stored(clinic, pk) == (MOBILE, True)


def test_the_builder_reads_the_stored_verdict_and_parses_only_without_one(clinic: Clinic) -> None:
    client = login(clinic.world)
    with tenant_context(clinic.world.tenant):
        # A stored verdict is believed (deliberately contradicting the number here)...
        Patient.all_objects.filter(pk=P1_ID).update(phone=LANDLINE, phone_is_mobile=True)
    assert _telecom(client, P1_ID) == [{"system": "phone", "value": LANDLINE, "use": "mobile"}]
    with tenant_context(clinic.world.tenant):
        # ...and a row written around the write paths (no verdict) is parsed.
        Patient.all_objects.filter(pk=P1_ID).update(phone=LANDLINE, phone_is_mobile=None)
    assert _telecom(client, P1_ID) == [{"system": "phone", "value": LANDLINE}]
    with tenant_context(clinic.world.tenant):
        Patient.all_objects.filter(pk=P1_ID).update(phone=MOBILE, phone_is_mobile=None)
    assert _telecom(client, P1_ID) == [{"system": "phone", "value": MOBILE, "use": "mobile"}]


def test_colliding_tenants_keep_their_own_verdicts(clinic: Clinic, clinic_beta: Clinic) -> None:
    """P1 has the same id in both tenants; a phone written in one never shows in the other."""
    for world_clinic, phone in ((clinic, MOBILE), (clinic_beta, LANDLINE)):
        client = login(world_clinic.world)
        version = client.get(f"{URL}{P1_ID}/").json()["version"]
        patched = client.patch(
            f"{URL}{P1_ID}/", {"phone": phone, "version": version}, format="json"
        )
        assert patched.status_code == 200, patched.content
    assert _stored(clinic, P1_ID) == (MOBILE, True)
    assert _stored(clinic_beta, P1_ID) == (LANDLINE, False)
    assert _telecom(login(clinic.world), P1_ID) == [
        {"system": "phone", "value": MOBILE, "use": "mobile"}
    ]
    assert _telecom(login(clinic_beta.world), P1_ID) == [{"system": "phone", "value": LANDLINE}]


def test_admin_add_and_change_store_the_verdict(clinic: Clinic) -> None:
    client = Client(HTTP_HOST=clinic.world.host)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": ADMIN_EMAIL, "password": clinic.world.password},
    )
    assert response.status_code == 302
    form = {
        "mrn": "MRN-1",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "birth_date": "1980-05-17",
        "sex": "female",
        "phone": "+49 30 12345678",
        "facility": str(F1_ID),
    }
    changed = client.post(f"/admin/clinical/patient/{P1_ID}/change/", form)
    assert changed.status_code == 302, changed.content[:3000]
    assert _stored(clinic, P1_ID) == (LANDLINE, False)
    added = client.post(
        "/admin/clinical/patient/add/", {**form, "mrn": "MRN-ADM", "phone": "+4915123456789"}
    )
    assert added.status_code == 302, added.content[:3000]
    with tenant_context(clinic.world.tenant):
        assert Patient.all_objects.get(mrn="MRN-ADM").phone_is_mobile is True


def test_the_migration_backfills_in_batches(clinic: Clinic, monkeypatch: Any) -> None:
    migration = importlib.import_module("clinical.migrations.0007_patient_phone_is_mobile")
    monkeypatch.setattr(migration, "BATCH", 1)  # every batch boundary exercised
    with tenant_context(clinic.world.tenant):
        Patient.all_objects.filter(pk=P1_ID).update(phone=MOBILE, phone_is_mobile=None)
        Patient.all_objects.exclude(pk=P1_ID).update(phone=LANDLINE, phone_is_mobile=None)
        Patient.all_objects.create(
            facility=clinic.f1, mrn="MRN-NOPHONE", given_name="N", family_name="P",
            birth_date="1970-01-01",
        )  # fmt: skip
        migration.backfill(django_apps, SimpleNamespace(connection=connection))
        rows = dict(Patient.all_objects.values_list("mrn", "phone_is_mobile"))
    assert rows.pop("MRN-1") is True
    assert rows.pop("MRN-NOPHONE") is None
    assert rows
    assert set(rows.values()) == {False}
