"""Prescriptions: nested items written atomically (bulk), item-set replacement on update,
per-item errors with the item's index, scope and query counts."""

from __future__ import annotations

from typing import Any

import pytest
from django_tenants.utils import tenant_context

from clinical.models import Prescription, PrescriptionItem
from tests.clinical.conftest import A1_ID, A2_ID, P1_ID, RX1_ID, Clinic, make_prescription
from tests.conftest import CLINICIAN_EMAIL, CLINICIAN_ID, login
from tests.query_budget import assert_constant_queries, count_queries

URL = "/api/v1/clinical/prescriptions/"


def _item(**overrides: Any) -> dict[str, Any]:
    item = {
        "medication": "Ibuprofen",
        "dose": "400 mg",
        "route": "oral",
        "frequency": "every 8 hours",
        "duration_days": 5,
        "quantity": 15,
    }
    item.update(overrides)
    return item


def _body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "patient": str(P1_ID),
        "appointment": str(A1_ID),
        "notes": "after meals",
        "items": [_item(), _item(medication="Omeprazole", dose="20 mg", quantity=5)],
    }
    body.update(overrides)
    return body


def test_create_with_items_in_one_bulk_insert(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)
    response, queries = count_queries(lambda: client.post(URL, _body(), format="json"))
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["prescriber"]["id"] == str(CLINICIAN_ID)
    assert [item["medication"] for item in body["items"]] == ["Ibuprofen", "Omeprazole"]
    assert [item["position"] for item in body["items"]] == [0, 1]
    inserts = [sql for sql in queries if sql.startswith('INSERT INTO "clinical_prescriptionitem"')]
    assert len(inserts) == 1


@pytest.mark.parametrize(
    ("items", "key"),
    [
        ([_item(), _item(route="by ear")], ("1", "route")),
        ([_item(duration_days=0)], ("0", "duration_days")),
        ([_item(), _item(), _item(quantity=-1)], ("2", "quantity")),
        ([_item(medication="")], ("0", "medication")),
    ],
)
def test_one_invalid_item_rejects_the_whole_write(
    clinic: Clinic, items: list[dict[str, Any]], key: tuple[str, str]
) -> None:
    response = login(clinic.world).post(URL, _body(items=items), format="json")
    assert response.status_code == 400, response.content
    index, field = key
    # Only the failing item is named, under its index.
    assert list(response.json()["error"]["fields"]["items"]) == [index]
    assert field in response.json()["error"]["fields"]["items"][index]
    with tenant_context(clinic.world.tenant):
        assert Prescription.objects.count() == 2
        assert PrescriptionItem.objects.count() == 2


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"items": []}, "items"),
        ({"items": "x"}, "items"),
        ({"appointment": str(A2_ID)}, "appointment"),
        ({"patient": "nope"}, "patient"),
    ],
)
def test_create_validation(clinic: Clinic, overrides: dict[str, Any], field: str) -> None:
    response = login(clinic.world).post(URL, _body(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]


def test_nurses_cannot_prescribe(clinic: Clinic) -> None:
    from accounts.roles import Role
    from apikit.policy import AccessLevel, container_access_grant
    from tests.clinical.conftest import STAFF_PASSWORD, make_user

    with tenant_context(clinic.world.tenant):
        nurse = make_user(email="nurse@example.com", role=Role.NURSE)
        container_access_grant(user=nurse, container=clinic.f1, level=AccessLevel.MANAGE)
    client = login(clinic.world, email="nurse@example.com", password=STAFF_PASSWORD)
    assert client.post(URL, _body(), format="json").status_code == 403
    assert client.get(f"{URL}{RX1_ID}/").status_code == 200


def test_patch_with_items_replaces_the_whole_set(clinic: Clinic) -> None:
    client = login(clinic.world)
    response = client.patch(
        f"{URL}{RX1_ID}/",
        {"items": [_item(medication="Paracetamol")], "notes": "changed", "version": 1},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert [item["medication"] for item in body["items"]] == ["Paracetamol"]
    assert body["notes"] == "changed"
    assert body["version"] == 2
    with tenant_context(clinic.world.tenant):
        assert list(
            PrescriptionItem.objects.filter(prescription_id=RX1_ID).values_list(
                "medication", flat=True
            )
        ) == ["Paracetamol"]


def test_patch_without_items_keeps_them(clinic: Clinic) -> None:
    response = login(clinic.world).patch(f"{URL}{RX1_ID}/", {"status": "completed"}, format="json")
    assert response.status_code == 200
    assert [item["medication"] for item in response.json()["items"]] == ["Amoxicillin"]


def test_invalid_replacement_changes_nothing(clinic: Clinic) -> None:
    response = login(clinic.world).put(
        f"{URL}{RX1_ID}/", {"items": [_item(), _item(dose="")]}, format="json"
    )
    assert response.status_code == 400
    assert "dose" in response.json()["error"]["fields"]["items"]["1"]
    with tenant_context(clinic.world.tenant):
        assert Prescription.objects.get(pk=RX1_ID).version == 1
        assert PrescriptionItem.objects.filter(prescription_id=RX1_ID).count() == 1


def test_stale_version_is_409(clinic: Clinic) -> None:
    response = login(clinic.world).patch(
        f"{URL}{RX1_ID}/", {"items": [_item()], "version": 3}, format="json"
    )
    assert response.status_code == 409
    with tenant_context(clinic.world.tenant):
        assert PrescriptionItem.objects.filter(prescription_id=RX1_ID).count() == 1


def test_delete_archives_and_hard_delete_takes_the_items(clinic: Clinic) -> None:
    client = login(clinic.world)
    assert client.delete(f"{URL}{RX1_ID}/?hard=true").status_code == 204
    with tenant_context(clinic.world.tenant):
        assert not Prescription.all_objects.filter(pk=RX1_ID).exists()
        assert not PrescriptionItem.all_objects.filter(prescription_id=RX1_ID).exists()


def test_list_query_count_is_constant(clinic: Clinic) -> None:
    client = login(clinic.world, email=CLINICIAN_EMAIL)

    def add_rows(n: int) -> None:
        with tenant_context(clinic.world.tenant):
            for _ in range(n):
                make_prescription(pk=None, patient=clinic.p2, prescriber=clinic.clinician)

    from apikit.policy import AccessLevel, container_access_grant

    with tenant_context(clinic.world.tenant):
        container_access_grant(user=clinic.clinician, container=clinic.f2, level=AccessLevel.VIEW)
        Prescription.objects.exclude(patient=clinic.p2).delete()
        Prescription.objects.filter(patient=clinic.p2).delete()
    assert_constant_queries(
        fetch=lambda: client.get(URL, {"page_size": 100}),
        add_rows=add_rows,
        expected_rows=lambda r: len(r.json()["results"]),
    )
    rows = client.get(URL).json()["results"]
    assert {row["item_count"] for row in rows} == {1}
