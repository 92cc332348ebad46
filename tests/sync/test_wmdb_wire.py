"""The WatermelonDB wire format, server side: what WatermelonDB's own code requires of a pull and
a push (docs/decisions.md, "WatermelonDB compatibility"). The real client drives the same
paths end to end in tests/sync_client/."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.roles import Role
from accounts.services import user_update
from apikit.ids import new_id
from apikit.policy import AccessLevel, container_access_grant, container_access_revoke
from audit.models import AuditEvent
from farms.models import Farm, Field, Observation
from sync.cursor import Cursor, cursor_decode, cursor_encode
from sync.first_sync import first_sync_stream
from sync.registry import sync_tables
from tests.clinical.conftest import STAFF_PASSWORD as CLINIC_PASSWORD
from tests.clinical.conftest import make_user
from tests.farms.conftest import F1, F2, FIELD1, FIELD2, PLANTING1, square
from tests.sync.conftest import SyncWorld, error, login, pull, pull_all
from tests.sync.test_push import observation, push, results

WMDB_TYPES = (str, int, float, bool, type(None))


def _wmdb_pull(client: Any, **params: Any) -> dict[str, Any]:
    return pull(client, format="wmdb", **params)


def _rows(body: dict[str, Any], table: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = body["changes"][table]["updated"]
    return rows


# --- the first sync ------------------------------------------------------------------------------


def test_first_sync_is_one_streamed_response_a_turbo_load_accepts(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    response = client.get("/api/v1/sync/pull/", {"format": "wmdb"})
    assert response.status_code == 200
    assert response.streaming
    body = json.loads(response.getvalue())
    assert body["has_more"] is False
    assert body["experimentalStrategy"] == "replacement"
    assert isinstance(body["timestamp"], int)
    assert body["timestamp"] > 0
    assert set(body["changes"]) == set(sync_tables())
    for table, changes in body["changes"].items():
        assert changes["created"] == []
        assert changes["deleted"] == []
        ids = [row["id"] for row in changes["updated"]]
        assert len(ids) == len(set(ids)), f"an id twice in {table}"
        for row in changes["updated"]:
            for column, value in row.items():
                assert isinstance(value, WMDB_TYPES), (table, column, value)
    [field] = [row for row in _rows(body, "fields") if row["id"] == str(FIELD1)]
    assert json.loads(field["boundary"])["type"] == "Polygon"
    assert isinstance(field["created_at"], int)
    assert isinstance(field["updated_at"], int)
    [obs] = _rows(body, "observations")[:1]
    assert isinstance(obs["observed_at"], int)
    # The same rows as the native format's full pull, value for value once converted.
    native, _, _, _ = pull_all(client)
    for table, rows in native.items():
        assert {row["id"] for row in _rows(body, table)} == set(rows)


def test_first_sync_of_a_field_agent_is_scoped_projected_and_audited(
    sync_alpha: SyncWorld,
) -> None:
    body = _wmdb_pull(sync_alpha.farms.agent_client())
    assert {row["id"] for row in _rows(body, "farms")} == {str(F1)}
    assert {row["id"] for row in _rows(body, "fields")} == {str(FIELD1)}
    assert "patients" not in body["changes"]
    with tenant_context(sync_alpha.world.tenant):
        viewer = make_user(email="viewer-first@example.com", role=Role.VIEWER)
        container_access_grant(user=viewer, container=sync_alpha.clinic.f1, level=AccessLevel.VIEW)
        before = AuditEvent.objects.filter(action=AuditEvent.Action.READ).count()
    clinic = login(sync_alpha.world, email=viewer.email, password=CLINIC_PASSWORD)
    patients = _rows(_wmdb_pull(clinic), "patients")
    assert [row["id"] for row in patients] == [str(sync_alpha.clinic.p1.pk)]
    assert {row["phone"] for row in patients} == {""}  # withheld: sent empty, never the number
    with tenant_context(sync_alpha.world.tenant):
        assert AuditEvent.objects.filter(action=AuditEvent.Action.READ).count() > before


def test_a_first_sync_cut_short_audits_what_it_streamed(sync_alpha: SyncWorld) -> None:
    tenant = sync_alpha.world.tenant
    with tenant_context(tenant):
        from accounts.models import User
        from sync.selectors import sync_scope, tables_for_user

        admin = User.objects.get(email="admin@example.com")
        tables = tables_for_user(user=admin, requested=["patients"])
        scope = sync_scope(user=admin, tables=tables)
        before = AuditEvent.objects.filter(action=AuditEvent.Action.READ).count()
        stream = first_sync_stream(user=admin, tables=tables, scope=scope, context=None)
        next(stream)
        next(stream)
        next(stream)  # the patients' first rows
        stream.close()  # the device went away
        assert AuditEvent.objects.filter(action=AuditEvent.Action.READ).count() == before + 1


# --- wire types on every later pull ---------------------------------------------------------------


@pytest.mark.usefixtures("live_db")
def test_later_pulls_send_timestamps_as_epoch_ms_and_json_as_text(live: SyncWorld) -> None:
    client = login(live.world)
    first = _wmdb_pull(client)
    with tenant_context(live.world.tenant):
        Field.objects.filter(pk=FIELD1).update(name="Renamed for the wire test")
    body = _wmdb_pull(client, cursor=first["cursor"])
    [field] = _rows(body, "fields")
    assert isinstance(field["boundary"], str)
    assert json.loads(field["boundary"])["type"] == "Polygon"
    with tenant_context(live.world.tenant):
        stored = Field.objects.get(pk=FIELD1)
    assert field["updated_at"] == int(stored.updated_at.timestamp() * 1000)
    assert body["experimentalStrategy"] == "incremental"
    assert body["timestamp"] >= first["timestamp"]


def test_the_app_schema_version_is_accepted_and_a_bad_migration_is_400(
    sync_alpha: SyncWorld,
) -> None:
    client = login(sync_alpha.world)
    assert _wmdb_pull(client, schema_version="7")["schema_version"] == 1
    bad = client.get("/api/v1/sync/pull/", {"format": "wmdb", "schema_version": "x"})
    assert error(bad, 400)["code"] == "invalid_schema_version"
    refused = client.get(
        "/api/v1/sync/pull/", {"format": "wmdb", "cursor": "x.y", "migration": "{not json"}
    )
    assert error(refused, 400)["code"] == "invalid_migration"
    # The native format keeps its own schema versions.
    native = client.get("/api/v1/sync/pull/", {"schema_version": "7"})
    assert error(native, 400)["code"] == "invalid_schema_version"


def test_a_replacement_cursor_of_the_previous_protocol_is_expired(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    cursor = cursor_decode(_wmdb_pull(client)["cursor"], schema=sync_alpha.world.tenant.schema_name)
    old = Cursor(lo=cursor.lo, hi=None, after=None, scope=cursor.scope, replacement=True)
    raw = cursor_encode(old, schema=sync_alpha.world.tenant.schema_name)
    assert error(client.get("/api/v1/sync/pull/", {"cursor": raw}), 410)["code"] == (
        "cursor_expired"
    )


# --- scope changes and migrations, committed ------------------------------------------------------


@pytest.mark.usefixtures("live_db")
def test_a_scope_change_during_a_scope_change_leaves_nothing_behind(live: SyncWorld) -> None:
    tenant = live.world.tenant
    with tenant_context(tenant):
        user = make_user(email=f"agent-{uuid.uuid4().hex[:6]}@example.com", role=Role.FIELD_AGENT)
        f1, f2 = Farm.objects.get(pk=F1), Farm.objects.get(pk=F2)
        container_access_grant(user=user, container=f1, level=AccessLevel.VIEW)
    client = login(live.world, email=user.email, password=CLINIC_PASSWORD)
    held, _, cursor, _ = pull_all(client)
    assert set(held["farms"]) == {str(F1)}
    with tenant_context(tenant):  # F2 granted: its rows are on their way...
        container_access_grant(user=user, container=f2, level=AccessLevel.VIEW)
    page = pull(client, cursor=cursor, limit=1)
    assert page["has_more"] is True
    with tenant_context(tenant):  # ...when F2 is revoked again, and F1 too
        container_access_revoke(user=user, container=f2, level=AccessLevel.VIEW)
        container_access_revoke(user=user, container=f1, level=AccessLevel.VIEW)
    device = {table: dict(rows) for table, rows in held.items()}
    _apply(device, page)
    *_, pages = pull_all(client, cursor=page["cursor"], limit=2)
    for body in pages:
        _apply(device, body)
    assert not device.get("farms")
    assert not device.get("fields")
    assert not device.get("observations")


@pytest.mark.usefixtures("live_db")
def test_a_migration_sends_every_row_of_the_tables_it_names(live: SyncWorld) -> None:
    client = live.farms.agent_client()
    _, _, cursor, _ = pull_all(client)
    body = pull(
        client,
        cursor=cursor,
        migration=json.dumps(
            {
                "from": 1,
                "tables": ["plantings"],
                "columns": [{"table": "farms", "columns": ["timezone"]}],
            }
        ),
    )
    pages = [body]
    while pages[-1]["has_more"]:
        pages.append(pull(client, cursor=pages[-1]["cursor"]))
    sent = {table for page in pages for table, ch in page["changes"].items() if ch["upserted"]}
    assert {"plantings", "farms"} <= sent
    plantings = {row["id"] for page in pages for row in page["changes"]["plantings"]["upserted"]}
    assert str(PLANTING1) in plantings


def _apply(device: dict[str, dict[str, Any]], body: dict[str, Any]) -> None:
    for table, changes in body["changes"].items():
        rows = device.setdefault(table, {})
        for row_id in changes["deleted"]:
            rows.pop(row_id, None)
        for row in changes["upserted"]:
            rows[row["id"]] = row


# --- push ------------------------------------------------------------------------------------------


def _wmdb_push(client: Any, changes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = push(client, changes, query="?format=wmdb", **extra).json()
    return body


def test_a_wmdb_push_reads_json_text_and_empty_relations(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.admin_client()
    boundary = square(36.2, -0.3)
    new_field = {
        "id": str(new_id()),
        "farm_id": str(F1),
        "name": "Pushed as WatermelonDB holds it",
        "boundary": json.dumps(boundary),
        "area_ha": 0,
        "version": 0,
        "created_at": 0,
        "updated_at": 0,
        "_status": "created",
        "_changed": "",
    }
    body = _wmdb_push(client, {"fields": {"created": [new_field], "updated": [], "deleted": []}})
    assert body["results"][0]["status"] == "applied", body
    reading = {
        "id": str(new_id()),
        "field_id": str(FIELD1),
        "planting_id": "",
        "supersedes_id": "",
        "observed_at": int((timezone.now() - dt.timedelta(hours=1)).timestamp() * 1000),
        "kind": "rainfall",
        "value": 1.2,
        "unit": "cm",
        "text": "",
        "_status": "created",
        "_changed": "",
    }
    body = _wmdb_push(
        client, {"observations": {"created": [reading], "updated": [], "deleted": []}}
    )
    assert body["results"][0]["status"] == "applied", body
    with tenant_context(sync_alpha.world.tenant):
        assert Field.objects.get(pk=new_field["id"]).boundary == boundary
        stored = Observation.objects.get(pk=reading["id"])
        assert stored.planting_id is None
        assert stored.supersedes_id is None
    broken = {**new_field, "id": str(new_id()), "boundary": "{not json"}
    body = _wmdb_push(client, {"fields": {"created": [broken], "updated": [], "deleted": []}})
    assert body["results"][0]["status"] == "rejected"
    assert body["experimentalRejectedIds"] == {"fields": [broken["id"]]}


@pytest.mark.parametrize(
    "spelling", [str.upper, lambda value: value.replace("-", ""), lambda v: "{" + v + "}"]
)
def test_only_canonical_lower_case_ids_are_accepted(sync_alpha: SyncWorld, spelling: Any) -> None:
    client = sync_alpha.farms.agent_client()
    row = observation()
    row["id"] = spelling(row["id"])
    [result] = results(push(client, {"observations": [row]}))
    assert result["status"] == "rejected"
    assert result["errors"][0]["field"] == "id"
    other = observation()
    other["fields"]["field_id"] = str(FIELD1).upper()
    [result] = results(push(client, {"observations": [other]}))
    assert result["status"] == "rejected"
    assert result["errors"][0]["field"] == "field_id"


def test_a_gone_row_is_rejected_for_watermelondb_and_a_deleted_one_is_not(
    sync_alpha: SyncWorld,
) -> None:
    client = sync_alpha.farms.admin_client()
    with tenant_context(sync_alpha.world.tenant):
        Field.objects.filter(pk=FIELD2).update(archived_at=timezone.now())
    updated = {"id": str(FIELD2), "name": "edited offline", "version": 1, "_status": "updated"}
    body = _wmdb_push(
        client,
        {"fields": {"created": [], "updated": [updated], "deleted": []}},
    )
    assert body["results"][0]["status"] == "gone"
    assert body["experimentalRejectedIds"] == {"fields": [str(FIELD2)]}
    body = _wmdb_push(client, {"fields": {"created": [], "updated": [], "deleted": [str(FIELD2)]}})
    assert body["results"][0]["status"] == "applied"
    assert body["experimentalRejectedIds"] == {}


def test_a_wmdb_push_never_skips_its_own_rows(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    since = _wmdb_pull(client)["cursor"]
    reading = {**observation()["fields"], "id": str(new_id())}
    reading["observed_at"] = int((timezone.now() - dt.timedelta(hours=1)).timestamp() * 1000)
    body = _wmdb_push(
        client,
        {"observations": {"created": [reading], "updated": [], "deleted": []}},
        cursor=since,
    )
    assert body["cursor"] == since


@pytest.mark.usefixtures("live_db")
def test_a_role_change_drops_the_tables_the_role_may_no_longer_sync(live: SyncWorld) -> None:
    tenant = live.world.tenant
    with tenant_context(tenant):
        user = make_user(email=f"nurse-{uuid.uuid4().hex[:6]}@example.com", role=Role.NURSE)
        container_access_grant(user=user, container=live.clinic.f1, level=AccessLevel.VIEW)
    client = login(live.world, email=user.email, password=CLINIC_PASSWORD)
    held, _, cursor, _ = pull_all(client)
    assert str(live.clinic.p1.pk) in held["patients"]
    with tenant_context(tenant), transaction.atomic():
        user_update(user=user, role=Role.FIELD_AGENT)
    client = login(live.world, email=user.email, password=CLINIC_PASSWORD)
    _, deleted, _, _ = pull_all(client, cursor=cursor, limit=1)
    assert str(live.clinic.p1.pk) in deleted["patients"]


@pytest.mark.usefixtures("live_db")
def test_asking_for_fewer_tables_drops_nothing_and_more_tables_sends_them(live: SyncWorld) -> None:
    client = live.farms.agent_client()
    _, _, cursor, _ = pull_all(client, tables="farms")
    upserted, deleted, cursor, _ = pull_all(client, cursor=cursor, tables="farms,fields")
    assert set(upserted["fields"]) == {str(FIELD1)}
    assert not any(deleted.values())
    _, deleted, _, _ = pull_all(client, cursor=cursor, tables="fields")
    assert not any(deleted.values())


def test_scope_snapshots_and_scope_changes_stay_in_their_tenant(
    sync_alpha: SyncWorld, sync_beta: SyncWorld
) -> None:
    """Same user ids, farm ids and grants in both tenants, so the same scope digest: each
    tenant keeps its own snapshot, and a grant in alpha resends rows to alpha's device only."""
    from sync.models import ScopeSnapshot

    alpha, beta = sync_alpha.farms.agent_client(), sync_beta.farms.agent_client()
    alpha_cursor, beta_cursor = pull(alpha)["cursor"], pull(beta)["cursor"]
    digests = {}
    for side in (sync_alpha, sync_beta):
        with tenant_context(side.world.tenant):
            digests[side.world.tenant.schema_name] = set(
                ScopeSnapshot.objects.values_list("digest", flat=True)
            )
    assert digests[sync_alpha.world.tenant.schema_name]
    assert (
        digests[sync_alpha.world.tenant.schema_name] == digests[sync_beta.world.tenant.schema_name]
    )
    with tenant_context(sync_alpha.world.tenant):
        container_access_grant(
            user=sync_alpha.farms.agent, container=Farm.objects.get(pk=F2), level=AccessLevel.VIEW
        )
    resent, _, _, _ = pull_all(alpha, cursor=alpha_cursor)
    assert str(F2) in resent["farms"]
    assert str(FIELD2) in resent["fields"]
    untouched, gone, _, _ = pull_all(beta, cursor=beta_cursor)
    assert str(F2) not in untouched.get("farms", {})
    assert not any(gone.values())
