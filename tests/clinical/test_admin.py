"""The clinical Django admin on a tenant host: every model registered, constant query counts for
the patient changelist, read-only audit fields, guardian object permissions on facilities."""

from __future__ import annotations

from datetime import date

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from clinical.models import Patient
from tests.clinical.conftest import F1_ID, P1_ID, Clinic
from tests.conftest import ADMIN_EMAIL
from tests.query_budget import assert_constant_queries


def _admin(clinic: Clinic) -> Client:
    client = Client(HTTP_HOST=clinic.world.host)
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": ADMIN_EMAIL, "password": clinic.world.password},
    )
    assert response.status_code == 302
    return client


@pytest.mark.parametrize(
    "path",
    [
        "/admin/clinical/facility/",
        "/admin/clinical/patient/",
        "/admin/clinical/appointment/",
        "/admin/clinical/prescription/",
        "/admin/clinical/patientdocument/",
        f"/admin/clinical/patient/{P1_ID}/change/",
        f"/admin/clinical/facility/{F1_ID}/change/",
        f"/admin/clinical/facility/{F1_ID}/permissions/",
        "/admin/clinical/patient/?q=lovelace",
    ],
)
def test_pages_render(clinic: Clinic, path: str) -> None:
    response = _admin(clinic).get(path)
    assert response.status_code == 200, response.content[:300]


def test_patient_changelist_queries_are_constant(clinic: Clinic) -> None:
    client = _admin(clinic)
    counter = iter(range(10_000))

    def add_rows(n: int) -> None:
        with tenant_context(clinic.world.tenant):
            Patient.objects.bulk_create(
                Patient(
                    facility=clinic.f1,
                    mrn=f"AD-{next(counter)}",
                    given_name="Admin",
                    family_name="Listed",
                    birth_date=date(1970, 1, 1),
                    assigned_clinician=clinic.clinician,
                )
                for _ in range(n)
            )

    # 2 fixture patients + 1 = 3 rows first, then 1,000.
    assert_constant_queries(
        fetch=lambda: client.get("/admin/clinical/patient/"),
        add_rows=add_rows,
        small=1,
        large=998,
    )


def test_admin_edit_bumps_version_and_normalises_phone(clinic: Clinic) -> None:
    client = _admin(clinic)
    page = client.get(f"/admin/clinical/facility/{F1_ID}/change/")
    assert b'name="version"' not in page.content  # read-only
    response = client.post(
        f"/admin/clinical/facility/{F1_ID}/change/",
        {
            "name": "North",
            "code": "N1",
            "timezone": "Europe/Berlin",
            "address": "",
            "phone": "+49 30 1234567",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    with tenant_context(clinic.world.tenant):
        clinic.f1.refresh_from_db()
        assert clinic.f1.phone == "+49301234567"
        assert clinic.f1.version == 2
