"""Patients created on a device: the push inserts them set-wise, without the server-managed
visit count, which the database fills in (it was a NOT NULL column without a default, so every
pushed patient create came back ``rejected: constraint``)."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from apikit.ids import new_id
from clinical.models import Patient
from tests.clinical.test_phone_type import LANDLINE, MOBILE
from tests.sync.conftest import SyncWorld, login
from tests.sync.test_push import push, results


def test_a_patient_created_offline_is_applied_with_no_visits(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    row = {
        "op": "upsert",
        "id": str(new_id()),
        "base_version": None,
        "fields": {
            "mrn": "DEV-0001",
            "given_name": "Wanjiru",
            "family_name": "Kamau",
            "birth_date": "1990-04-02",
            "sex": "female",
            "facility_id": str(sync_alpha.clinic.f1.pk),
            "visit_count": 7,  # server-managed: ignored
        },
    }
    [result] = results(push(client, {"patients": [row]}))
    assert result["status"] == "applied", result
    with tenant_context(sync_alpha.world.tenant):
        assert Patient.objects.get(pk=row["id"]).visit_count == 0


def test_sync_push_create_and_update_store_the_verdict(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    row_id = str(new_id())
    row = {
        "op": "upsert",
        "id": row_id,
        "base_version": None,
        "fields": {
            "mrn": "DEV-PT-1",
            "given_name": "Wanjiru",
            "family_name": "Kamau",
            "birth_date": "1990-04-02",
            "sex": "female",
            "phone": "+49 151 23456789",
            "facility_id": str(sync_alpha.clinic.f1.pk),
        },
    }
    [result] = results(push(client, {"patients": [row]}))
    assert result["status"] == "applied", result
    assert _stored(sync_alpha, row_id) == (MOBILE, True)

    update = {"op": "upsert", "id": row_id, "base_version": 1, "fields": {"phone": LANDLINE}}
    [result] = results(push(client, {"patients": [update]}))
    assert result["status"] == "applied", result
    assert _stored(sync_alpha, row_id) == (LANDLINE, False)

    # An update that does not touch the phone keeps the verdict.
    rename = {"op": "upsert", "id": row_id, "base_version": 2, "fields": {"given_name": "W"}}
    [result] = results(push(client, {"patients": [rename]}))
    assert result["status"] == "applied", result
    assert _stored(sync_alpha, row_id) == (LANDLINE, False)


def _stored(sync: SyncWorld, pk: str) -> tuple[str, bool | None]:
    with tenant_context(sync.world.tenant):
        phone, is_mobile = Patient.all_objects.values_list("phone", "phone_is_mobile").get(pk=pk)
    return phone, is_mobile
