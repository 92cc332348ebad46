"""Patients created on a device: the push inserts them set-wise, without the server-managed
visit count, which the database fills in (it was a NOT NULL column without a default, so every
pushed patient create came back ``rejected: constraint``)."""

from __future__ import annotations

from django_tenants.utils import tenant_context

from apikit.ids import new_id
from clinical.models import Patient
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
