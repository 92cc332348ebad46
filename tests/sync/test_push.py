"""Sync push: per-row outcomes, conflict policies, idempotent replays, limits, isolation."""

from __future__ import annotations

import dataclasses
import datetime as dt
import gzip
import uuid
from typing import Any

import orjson
import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from apikit.ids import new_id
from audit.models import AuditEvent
from farms.models import Field, Observation, Planting
from tests.farms.conftest import CROP, F1, FIELD1, FIELD2, OBS1, PLANTING1, square
from tests.sync.conftest import SyncWorld, error, login

PUSH = "/api/v1/sync/push/"


def push(
    client: APIClient,
    changes: dict[str, Any],
    *,
    key: str | None = None,
    status: int = 200,
    query: str = "",
    **extra: Any,
) -> Any:
    body = orjson.dumps({"changes": changes, **extra})
    response = client.post(
        PUSH + query,
        data=body,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=key or str(uuid.uuid4()),
    )
    assert response.status_code == status, response.content
    return response


def results(response: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = response.json()["results"]
    return out


def observation(field: uuid.UUID = FIELD1, **fields: Any) -> dict[str, Any]:
    values = {
        "field_id": str(field),
        "observed_at": (timezone.now() - dt.timedelta(hours=1)).isoformat(),
        "kind": "rainfall",
        "value": 4.5,
        "unit": "mm",
        "text": "",
    }
    values.update(fields)
    return {"op": "upsert", "id": str(new_id()), "base_version": None, "fields": values}


# --- the happy path and the response ----------------------------------------------------------


def test_push_creates_rows_set_wise_with_results_summary_and_cursor(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()  # field agent: view on F1, may add observations
    rows = [observation(text=f"reading {i}") for i in range(3)]
    body = push(client, {"observations": rows}).json()
    assert [r["status"] for r in body["results"]] == ["applied"] * 3
    assert all(r["version"] == 1 for r in body["results"])
    assert body["summary"] == {
        "applied": 3,
        "merged": 0,
        "conflict": 0,
        "rejected": 0,
        "duplicate": 0,
        "gone": 0,
    }
    # No pull cursor was sent, so none is claimed (tests/sync/test_push_cursor.py has the rest).
    assert body["cursor"] is None
    with tenant_context(sync_alpha.world.tenant):
        stored = Observation.objects.filter(pk__in=[r["id"] for r in rows])
        assert stored.count() == 3
        assert {o.recorded_by_id for o in stored} == {sync_alpha.farms.agent.pk}
        events = AuditEvent.objects.filter(object_type="farms.observation", action="create")
        assert sorted(str(i) for i in events.get().object_ids) == sorted(r["id"] for r in rows)


def test_server_managed_fields_are_ignored(sync_alpha: SyncWorld) -> None:
    """Mass assignment: version, recorded_by, created_by, timestamps, device from the body are
    dropped; the server sets them."""
    client = sync_alpha.farms.agent_client()
    row = observation(
        version=99,
        recorded_by_id=str(sync_alpha.farms.admin.pk),
        created_by_id=str(sync_alpha.farms.admin.pk),
        created_at="2001-01-01T00:00:00Z",
        archived_at="2001-01-01T00:00:00Z",
        device_id="spoofed",
        is_superseded=True,
    )
    assert results(push(client, {"observations": [row]}))[0]["status"] == "applied"
    with tenant_context(sync_alpha.world.tenant):
        stored = Observation.all_objects.get(pk=row["id"])
    assert stored.version == 1
    assert stored.recorded_by_id == sync_alpha.farms.agent.pk
    assert stored.created_by_id == sync_alpha.farms.agent.pk
    assert stored.archived_at is None
    assert stored.created_at.year > 2001
    assert stored.device_id == ""


def test_rejected_rows_carry_field_errors_and_do_not_block_others(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    good = observation()
    bad_kind = observation(kind="volcano")
    bad_unit = observation(value=5, unit="furlongs")
    missing = observation()
    del missing["fields"]["observed_at"]
    not_uuid = {**observation(), "id": "not-a-uuid"}
    future = observation(observed_at=(timezone.now() + dt.timedelta(days=2)).isoformat())
    out = results(
        push(client, {"observations": [good, bad_kind, bad_unit, missing, not_uuid, future]})
    )
    assert [r["status"] for r in out] == ["applied"] + ["rejected"] * 5
    assert out[1]["errors"][0] == {
        "code": "choice",
        "field": "kind",
        "msg": out[1]["errors"][0]["msg"],
    }
    assert out[2]["errors"][0]["field"] == "unit"
    assert out[3]["errors"] == [
        {"code": "required", "field": "observed_at", "msg": "This field is required."}
    ]
    assert out[4]["id"] == "not-a-uuid"
    assert out[4]["errors"][0]["field"] == "id"
    assert out[5]["errors"][0]["field"] == "observed_at"


def test_duplicate_ids_in_one_batch_are_rejected_not_a_500(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    row = observation()
    out = results(push(client, {"observations": [row, row]}))
    assert [r["status"] for r in out] == ["applied", "rejected"]
    assert out[1]["errors"][0]["code"] == "duplicate_in_batch"


def test_rows_referencing_rows_of_the_same_batch(sync_alpha: SyncWorld) -> None:
    """Parents first: a field, a planting on it and an observation of that planting in one
    push; a row whose parent was rejected is rejected with dependency_failed."""
    client = sync_alpha.farms.admin_client()
    field_id, planting_id = str(new_id()), str(new_id())
    bad_field_id = str(new_id())
    changes = {
        "observations": [
            observation(field=uuid.UUID(field_id), planting_id=planting_id),
            observation(field=uuid.UUID(bad_field_id)),
        ],
        "plantings": [
            {
                "op": "upsert",
                "id": planting_id,
                "base_version": None,
                "fields": {
                    "field_id": field_id,
                    "crop_id": str(CROP),
                    "season": "2026 short rains",
                    "planted_on": "2026-10-01",
                    "status": "growing",
                },
            }
        ],
        "fields": [
            {
                "op": "upsert",
                "id": field_id,
                "base_version": None,
                "fields": {"farm_id": str(F1), "name": "New block", "boundary": square(36.3, -0.3)},
            },
            {
                "op": "upsert",
                "id": bad_field_id,
                "base_version": None,
                "fields": {"farm_id": str(F1), "name": "Bad", "boundary": {"type": "Point"}},
            },
        ],
    }
    out = results(push(client, changes))
    by_id = {r["id"]: r for r in out}
    assert by_id[field_id]["status"] == "applied"
    assert by_id[planting_id]["status"] == "applied"
    assert by_id[bad_field_id]["status"] == "rejected"
    statuses = [r["status"] for r in out if r["table"] == "observations"]
    assert statuses == ["applied", "rejected"]
    assert out[1]["errors"][0]["code"] == "dependency_failed"
    with tenant_context(sync_alpha.world.tenant):
        field = Field.objects.get(pk=field_id)
        assert field.area_ha > 0
        assert field.created_by_id == sync_alpha.farms.admin.pk


# --- scope -------------------------------------------------------------------------------------


def test_rows_outside_the_users_farms_are_forbidden_per_row(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()  # view on F1 only
    out = results(push(client, {"observations": [observation(FIELD1), observation(FIELD2)]}))
    assert [r["status"] for r in out] == ["applied", "rejected"]
    assert out[1]["errors"][0]["code"] == "forbidden"


def test_role_without_the_permission_is_forbidden_per_row(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()  # a field agent may not change plantings
    row = {
        "op": "upsert",
        "id": str(PLANTING1),
        "base_version": 1,
        "fields": {"season": "renamed"},
    }
    out = results(push(client, {"plantings": [row], "crops": [{**row, "id": str(CROP)}]}))
    assert out[0]["status"] == "rejected"
    assert out[0]["errors"][0]["code"] == "forbidden"
    assert out[1]["status"] == "rejected"
    assert out[1]["errors"][0]["code"] == "read_only"


def test_scope_checks_cost_one_query_per_table_not_per_row(sync_alpha: SyncWorld) -> None:
    """The statement count of a push is the same for 2 and for 40 rows of the same shape."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = sync_alpha.farms.agent_client()
    push(client, {"observations": [observation()]})  # warm caches

    def count(rows: int) -> int:
        batch = [observation(FIELD1 if i % 2 else FIELD2, planting_id=None) for i in range(rows)]
        with CaptureQueriesContext(connection) as captured:
            push(client, {"observations": batch})
        return len(captured.captured_queries)

    assert count(2) == count(40)


# --- idempotency and retries -------------------------------------------------------------------


def test_replay_with_the_same_key_is_byte_identical(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    key = str(uuid.uuid4())
    rows = [observation(), observation(kind="volcano")]
    first = push(client, {"observations": rows}, key=key)
    second = push(client, {"observations": rows}, key=key)
    assert second.content == first.content
    assert second["Idempotent-Replayed"] == "true"
    with tenant_context(sync_alpha.world.tenant):
        assert Observation.objects.filter(pk=rows[0]["id"]).count() == 1


def test_same_key_with_another_body_is_422(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    key = str(uuid.uuid4())
    push(client, {"observations": [observation()]}, key=key)
    response = push(client, {"observations": [observation()]}, key=key, status=422)
    assert error(response, 422)["code"] == "idempotency_key_reused"


def test_missing_key_is_400(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    response = client.post(PUSH, {"changes": {}}, format="json")
    assert error(response, 400)["code"] == "idempotency_key_required"


def test_lost_response_then_retry_with_a_new_key_gives_duplicates(sync_alpha: SyncWorld) -> None:
    """The crash after commit: the first push committed but its answer never arrived. A retry
    with the same key replays; a client that lost the key too sends the same rows under a new
    key and gets ``duplicate`` for every row; no row is written twice."""
    client = sync_alpha.farms.agent_client()
    rows = [observation(), observation(kind="note", value=None, unit="", text="hail")]
    push(client, {"observations": rows}, key="k-1")  # response dropped on the floor
    again = results(push(client, {"observations": rows}, key="k-2"))
    assert [r["status"] for r in again] == ["duplicate", "duplicate"]
    assert [r["version"] for r in again] == [1, 1]
    with tenant_context(sync_alpha.world.tenant):
        assert Observation.objects.filter(pk__in=[r["id"] for r in rows]).count() == 2


# --- conflicts per policy ----------------------------------------------------------------------


def test_append_only_update_is_rejected_and_correction_is_a_new_row(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    update = {"op": "upsert", "id": str(OBS1), "base_version": 1, "fields": {"value": 99.0}}
    out = results(push(client, {"observations": [update]}))
    assert out[0]["status"] == "rejected"
    assert out[0]["errors"][0]["code"] == "append_only"
    correction = observation(supersedes_id=str(OBS1), value=13.0)
    second = observation(supersedes_id=str(OBS1), value=14.0)
    out = results(push(client, {"observations": [correction, second]}))
    assert out[0]["status"] == "applied"
    assert out[1]["status"] == "rejected"
    assert out[1]["errors"][0]["code"] == "already_superseded"


def test_clinical_conflict_is_rejected_with_the_server_copy(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    patient = sync_alpha.clinic.p1
    stale = {
        "op": "upsert",
        "id": str(patient.pk),
        "base_version": 1,
        "fields": {"given_name": "X"},
    }
    first = results(push(client, {"patients": [stale]}))
    assert first[0]["status"] == "applied"
    assert first[0]["version"] == 2
    other = {**stale, "fields": {"given_name": "Y"}}
    out = results(push(client, {"patients": [other]}))
    assert out[0]["status"] == "conflict"
    assert out[0]["server_record"]["given_name"] == "X"
    assert out[0]["server_record"]["version"] == 2
    assert out[0]["conflicting_fields"] == ["given_name"]


def test_field_merge_applies_non_overlapping_changes(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.admin_client()
    row = {"op": "upsert", "id": str(PLANTING1), "base_version": 1}
    server = results(push(client, {"plantings": [{**row, "fields": {"status": "harvested"}}]}))
    assert server[0]["status"] == "applied"
    stale = {**row, "fields": {"season": "2026 renamed"}, "changed": ["season"]}
    out = results(push(client, {"plantings": [stale]}))
    assert out[0]["status"] == "merged"
    assert out[0]["merged_fields"] == ["season"]
    with tenant_context(sync_alpha.world.tenant):
        planting = Planting.objects.get(pk=PLANTING1)
    assert (planting.season, planting.status, planting.version) == (
        "2026 renamed",
        "harvested",
        3,
    )
    overlapping = {**row, "fields": {"status": "failed"}, "changed": ["status"]}
    out = results(push(client, {"plantings": [overlapping]}))
    assert out[0]["status"] == "conflict"
    assert out[0]["conflicting_fields"] == ["status"]


def test_update_or_delete_of_a_deleted_row_is_gone(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.admin_client()
    delete = {"op": "delete", "id": str(PLANTING1), "base_version": 1}
    assert results(push(client, {"plantings": [delete]}))[0]["status"] == "applied"
    update = {"op": "upsert", "id": str(PLANTING1), "base_version": 2, "fields": {"season": "x"}}
    assert results(push(client, {"plantings": [update]}))[0]["status"] == "gone"
    unknown = {"op": "delete", "id": str(new_id()), "base_version": None}
    assert results(push(client, {"plantings": [unknown]}))[0]["status"] == "applied"
    with tenant_context(sync_alpha.world.tenant):
        assert Planting.all_objects.get(pk=PLANTING1).archived_at is not None


# --- atomic: all -------------------------------------------------------------------------------


def test_atomic_all_rolls_back_the_whole_batch(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    good, bad = observation(), observation(kind="volcano")
    out = results(push(client, {"observations": [good, bad]}, atomic="all"))
    assert out[0]["status"] == "rejected"
    assert out[0]["errors"][0]["code"] == "batch_aborted"
    assert out[1]["status"] == "rejected"
    assert out[1]["errors"][0]["code"] == "choice"
    with tenant_context(sync_alpha.world.tenant):
        assert not Observation.objects.filter(pk=good["id"]).exists()
    out = results(push(client, {"observations": [good]}, atomic="all"))
    assert out[0]["status"] == "applied"


# --- limits ------------------------------------------------------------------------------------


def test_more_than_5000_rows_is_413_with_the_limits(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    rows = [{"op": "delete", "id": str(uuid.uuid4())} for _ in range(5001)]
    body = error(push(client, {"observations": rows}, status=413), 413)
    assert body["limits"] == {"max_rows": 5000, "max_bytes": 10 * 1024 * 1024}


def test_body_over_10_mb_is_413_with_the_limits(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    big = orjson.dumps({"changes": {"observations": []}, "pad": "x" * (10 * 1024 * 1024)})
    response = client.post(
        PUSH, data=big, content_type="application/json", HTTP_IDEMPOTENCY_KEY="big"
    )
    assert error(response, 413)["limits"]["max_rows"] == 5000
    bomb = gzip.compress(big)  # small on the wire, over the limit decompressed
    response = client.post(
        PUSH,
        data=bomb,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="bomb",
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert error(response, 413)["limits"]["max_bytes"] == 10 * 1024 * 1024


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"changes": []}',
        b'{"changes": {"observations": {}}}',
        b'{"changes": {}, "atomic": "some"}',
    ],
)
def test_malformed_bodies_are_400(sync_alpha: SyncWorld, body: bytes) -> None:
    client = sync_alpha.farms.agent_client()
    response = client.post(
        PUSH, data=body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4())
    )
    assert error(response, 400)["code"] == "malformed_push"


def test_gzip_body_is_accepted(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    body = gzip.compress(orjson.dumps({"changes": {"observations": [observation()]}}))
    response = client.post(
        PUSH,
        data=body,
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
        HTTP_CONTENT_ENCODING="gzip",
    )
    assert response.status_code == 200, response.content
    assert response.json()["summary"]["applied"] == 1


# --- tenants -----------------------------------------------------------------------------------


def test_push_on_one_tenant_never_touches_the_other(
    sync_alpha: SyncWorld, sync_beta: SyncWorld
) -> None:
    """Both tenants hold the same ids; a push on alpha changes alpha's row only, and a row
    created on alpha with an id free in beta does not appear in beta."""
    client = login(sync_alpha.world)
    row = {"op": "upsert", "id": str(PLANTING1), "base_version": 1, "fields": {"season": "A"}}
    new = observation()
    out = results(push(client, {"plantings": [row], "observations": [new]}))
    assert [r["status"] for r in out] == ["applied", "applied"]
    with tenant_context(sync_beta.world.tenant):
        assert Planting.objects.get(pk=PLANTING1).season == "2026 long rains"
        assert Planting.objects.get(pk=PLANTING1).version == 1
        assert not Observation.all_objects.filter(pk=new["id"]).exists()
    # The same key on beta is a different batch (keys are per tenant and user).
    beta_client = login(sync_beta.world)
    again = results(push(beta_client, {"plantings": [row]}, key="shared-key"))
    second = {**row, "base_version": 2, "fields": {"season": "B"}}
    first = results(push(client, {"plantings": [second]}, key="shared-key"))
    assert again[0]["version"] == 2
    assert first[0]["version"] == 3


def test_pushed_columns_are_writable_wire_fields_of_the_one_registry() -> None:
    """One registry for pull and push: a table's push columns are wire fields the pull sends and
    a device may set, and every pushed table names its container."""
    from sync.registry import ConflictPolicy, sync_tables

    tables = sync_tables()
    assert set(tables) == {
        "farms",
        "fields",
        "crops",
        "plantings",
        "observations",
        "harvests",
        "patients",
        "appointments",
    }
    for name, table in tables.items():
        writable = {column.name for column in table.columns}
        assert writable <= table.writable_fields, name
        if table.conflict_policy != ConflictPolicy.SERVER_WINS:
            assert writable, name
            assert table.container_model is not None, name
            assert table.container_of is not None, name


def test_the_registry_refuses_a_column_the_pull_does_not_know() -> None:
    from clinical.sync import PATIENTS
    from sync.columns import Column
    from sync.registry import register

    with pytest.raises(ValueError, match="not writable"):
        register(dataclasses.replace(PATIENTS, columns=(Column("visit_count", "text"),)))
