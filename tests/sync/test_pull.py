"""Pull: full and incremental pages, tombstones, scope and projection, cursors, formats,
isolation between tenants with colliding ids, and a query count independent of page size."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.roles import Role
from apikit.policy import AccessLevel, container_access_grant, container_access_revoke
from farms.models import Farm, Observation, Planting
from sync.cursor import Cursor, cursor_decode, cursor_encode
from sync.models import SyncState
from tests.clinical.conftest import P1_ID, P2_ID, make_user
from tests.clinical.conftest import STAFF_PASSWORD as CLINIC_PASSWORD
from tests.farms.conftest import (
    AGENT_EMAIL,
    F1,
    F2,
    FIELD1,
    FIELD2,
    OBS1,
    OBS2,
    PLANTING1,
    STAFF_PASSWORD,
)
from tests.sync.conftest import SyncWorld, error, login, pull, pull_all

ALL_TABLES = {
    "farms",
    "fields",
    "crops",
    "plantings",
    "observations",
    "harvests",
    "patients",
    "appointments",
}


def _ids(rows: dict[str, Any], table: str) -> set[str]:
    return set(rows.get(table, {}))


# --- in one test transaction ---------------------------------------------------------------------


def test_full_pull_sends_every_table_in_the_documented_shape(sync_alpha: SyncWorld) -> None:
    body = pull(login(sync_alpha.world))
    assert body["strategy"] == "incremental"
    assert body["has_more"] is False
    assert body["schema_version"] == 1
    assert set(body["changes"]) == ALL_TABLES
    fields = {row["id"]: row for row in body["changes"]["fields"]["upserted"]}
    assert set(fields) == {str(FIELD1), str(FIELD2)}
    field = fields[str(FIELD1)]
    assert field["farm_id"] == str(F1)
    assert field["boundary"]["type"] == "Polygon"
    assert field["version"] == 1
    assert field["updated_at"].endswith("Z")
    patients = {row["id"]: row for row in body["changes"]["patients"]["upserted"]}
    assert set(patients) == {str(P1_ID), str(P2_ID)}
    assert "phone" in patients[str(P1_ID)]  # tenant_admin receives phone numbers


def test_pull_on_one_tenant_never_shows_the_other_with_colliding_ids(
    sync_alpha: SyncWorld, sync_beta: SyncWorld
) -> None:
    alpha_body = pull(login(sync_alpha.world))
    beta_body = pull(login(sync_beta.world))
    alpha_farms = {row["id"]: row["name"] for row in alpha_body["changes"]["farms"]["upserted"]}
    beta_farms = {row["id"]: row["name"] for row in beta_body["changes"]["farms"]["upserted"]}
    assert set(alpha_farms) == set(beta_farms) == {str(F1), str(F2)}  # the same ids...
    assert all(name.startswith("alpha") for name in alpha_farms.values())  # ...own rows only
    assert all(name.startswith("beta") for name in beta_farms.values())


def test_a_cursor_of_another_tenant_is_refused(sync_alpha: SyncWorld, sync_beta: SyncWorld) -> None:
    beta_cursor = pull(login(sync_beta.world))["cursor"]
    body = error(login(sync_alpha.world).get("/api/v1/sync/pull/", {"cursor": beta_cursor}), 400)
    assert body["code"] == "cursor_invalid"


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),  # signature
        lambda c: "x" + c,  # payload
        lambda c: "not-a-cursor",
        lambda c: c + "." + c,
        lambda c: "%%%." + c.split(".")[1],
    ],
)
def test_tampered_cursor_is_400(sync_alpha: SyncWorld, mangle: Any) -> None:
    client = login(sync_alpha.world)
    cursor = pull(client, tables="farms")["cursor"]
    body = error(client.get("/api/v1/sync/pull/", {"cursor": mangle(cursor)}), 400)
    assert body["code"] == "cursor_invalid"


def test_a_re_signed_cursor_with_forged_fields_still_needs_the_key(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    with tenant_context(sync_alpha.world.tenant):
        forged = cursor_encode(Cursor(lo=0, hi=None, after=None, scope="x"), schema="t_beta")
    assert error(client.get("/api/v1/sync/pull/", {"cursor": forged}), 400)["code"] == (
        "cursor_invalid"
    )


def test_expired_cursor_is_410(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    cursor = pull(client, tables="farms")["cursor"]
    with tenant_context(sync_alpha.world.tenant):
        decoded = cursor_decode(cursor)
        SyncState.objects.update_or_create(pk=1, defaults={"min_retained_txid": decoded.lo + 1000})
    body = error(client.get("/api/v1/sync/pull/", {"cursor": cursor}), 410)
    assert body["code"] == "cursor_expired"
    # Without a cursor (a full re-sync) the pull still works.
    assert pull(client, tables="farms")["changes"]["farms"]["upserted"]


@pytest.mark.parametrize("limit", ["0", "5001", "abc", "-3", "1.5"])
def test_bad_limit_is_400(sync_alpha: SyncWorld, limit: str) -> None:
    response = login(sync_alpha.world).get("/api/v1/sync/pull/", {"limit": limit})
    assert error(response, 400)["code"] == "invalid_limit"


def test_unknown_table_is_400_and_a_forbidden_one_403(sync_alpha: SyncWorld) -> None:
    admin = login(sync_alpha.world)
    assert error(admin.get("/api/v1/sync/pull/", {"tables": "farms,secrets"}), 400)["code"] == (
        "unknown_table"
    )
    agent = login(sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD)
    assert error(agent.get("/api/v1/sync/pull/", {"tables": "patients"}), 403)["code"] == (
        "table_forbidden"
    )


def test_schema_version_checks(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    assert error(client.get("/api/v1/sync/pull/", {"schema_version": "99"}), 400)["code"] == (
        "invalid_schema_version"
    )
    assert pull(client, schema_version="1", tables="crops")["schema_version"] == 1


def test_field_agent_sees_only_granted_farms_and_no_clinical_tables(
    sync_alpha: SyncWorld,
) -> None:
    agent = login(sync_alpha.world, email=AGENT_EMAIL, password=STAFF_PASSWORD)
    body = pull(agent)
    assert "patients" not in body["changes"]
    assert "appointments" not in body["changes"]
    assert {r["id"] for r in body["changes"]["farms"]["upserted"]} == {str(F1)}
    assert {r["id"] for r in body["changes"]["fields"]["upserted"]} == {str(FIELD1)}
    assert {r["id"] for r in body["changes"]["observations"]["upserted"]} == {str(OBS1)}
    assert len(body["changes"]["crops"]["upserted"]) == 1  # the tenant-wide catalogue


def test_projection_hides_phone_numbers_from_roles_that_do_not_call_patients(
    sync_alpha: SyncWorld,
) -> None:
    from clinical.sync import PATIENTS

    with tenant_context(sync_alpha.world.tenant):
        viewer = make_user(email="viewer-sync@example.com", role=Role.VIEWER)
        container_access_grant(user=viewer, container=sync_alpha.clinic.f1, level=AccessLevel.VIEW)
        agent = sync_alpha.farms.agent
    assert "phone" not in PATIENTS.projection(agent)
    viewer_client = login(sync_alpha.world, email=viewer.email, password=CLINIC_PASSWORD)
    patients = pull(viewer_client, tables="patients")["changes"]["patients"]["upserted"]
    assert [row["id"] for row in patients] == [str(P1_ID)]  # facility F1 only
    assert "phone" not in patients[0]
    assert "mrn" in patients[0]
    clinician = login(sync_alpha.world, email="clinician@example.com")
    rows = pull(clinician, tables="patients")["changes"]["patients"]["upserted"]
    assert "phone" in rows[0]


def test_watermelondb_format(sync_alpha: SyncWorld) -> None:
    body = pull(login(sync_alpha.world), format="wmdb", tables="farms,fields")
    assert set(body) >= {"changes", "timestamp", "cursor", "has_more"}
    assert isinstance(body["timestamp"], int)
    farms = body["changes"]["farms"]
    assert farms["created"] == []
    assert farms["deleted"] == []
    assert {row["id"] for row in farms["updated"]} == {str(F1), str(F2)}


def test_paging_covers_everything_once(sync_alpha: SyncWorld) -> None:
    client = login(sync_alpha.world)
    full, _, _, _ = pull_all(client)
    paged, deleted, _, pages = pull_all(client, limit=2)
    assert len(pages) > 3
    assert all(page["has_more"] for page in pages[:-1])
    assert not pages[-1]["has_more"]
    assert {t: set(rows) for t, rows in paged.items()} == {t: set(r) for t, r in full.items()}
    # The fixture re-keys its fields (an UPDATE of the primary key): the old ids are tombstones.
    assert not deleted.get("fields", set()) & set(full["fields"])


def test_query_count_does_not_grow_with_page_size(sync_alpha: SyncWorld) -> None:
    with tenant_context(sync_alpha.world.tenant):
        now = timezone.now()
        Observation.objects.bulk_create(
            Observation(field_id=FIELD1, observed_at=now, kind="note", text=f"note {n}")
            for n in range(60)
        )
    client = login(sync_alpha.world)
    pull(client, limit=25)  # warm caches

    def count(limit: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            body = pull(client, limit=limit)
        rows = sum(len(t["upserted"]) + len(t["deleted"]) for t in body["changes"].values())
        assert rows >= limit - 5  # (a page collapses repeated entries of one row)
        assert all(t["upserted"] for t in body["changes"].values())  # every table has rows
        return len(captured.captured_queries)

    # At most one query per table, whatever the page size.
    assert count(25) == count(80)


# --- committed data (the live tenant) --------------------------------------------------------------


def _as(world: SyncWorld, email: str, password: str = CLINIC_PASSWORD) -> Any:
    return login(world.world, email=email, password=password)


@pytest.mark.usefixtures("live_db")
def test_incremental_pull_sees_every_write_path_and_tombstones(live: SyncWorld) -> None:
    client = login(live.world)
    _, _, cursor, _ = pull_all(client)
    tenant = live.world.tenant
    with tenant_context(tenant):
        Planting.objects.filter(pk=PLANTING1).update(season="2027 short rains")  # update()
        created = Observation.objects.bulk_create(  # bulk_create
            [
                Observation(field_id=FIELD2, observed_at=timezone.now(), kind="note", text="x"),
                Observation(field_id=FIELD2, observed_at=timezone.now(), kind="note", text="y"),
            ]
        )
        with connection.cursor() as db:  # raw SQL
            db.execute("UPDATE farms_farm SET region = 'raw' WHERE id = %s", [F2])
        Observation.objects.filter(pk=OBS2).update(archived_at=timezone.now())  # soft delete
    upserted, deleted, cursor, _ = pull_all(client, cursor=cursor)
    assert _ids(upserted, "plantings") == {str(PLANTING1)}
    assert upserted["plantings"][str(PLANTING1)]["season"] == "2027 short rains"
    assert _ids(upserted, "observations") == {str(o.pk) for o in created}
    assert deleted["observations"] == {str(OBS2)}
    assert upserted["farms"][str(F2)]["region"] == "raw"
    assert _ids(upserted, "fields") == set()
    assert _ids(upserted, "patients") == set()
    # Nothing new: an empty page, same position.
    again, gone, _, _ = pull_all(client, cursor=cursor)
    assert not any(again.values())
    assert not any(gone.values())


@pytest.mark.usefixtures("live_db")
def test_losing_a_grant_sends_the_lost_rows_as_tombstones_page_by_page(live: SyncWorld) -> None:
    """WatermelonDB applies ``replacement`` per response, so a scope change travels as ordinary
    changes: the ids of every row under the revoked farm in ``deleted``, paged."""
    tenant = live.world.tenant
    with tenant_context(tenant):
        user = make_user(email=f"agent-{uuid.uuid4().hex[:6]}@example.com", role=Role.FIELD_AGENT)
        f1, f2 = Farm.objects.get(pk=F1), Farm.objects.get(pk=F2)
        container_access_grant(user=user, container=f1, level=AccessLevel.VIEW)
        container_access_grant(user=user, container=f2, level=AccessLevel.VIEW)
    client = _as(live, user.email)
    first, _, cursor, pages = pull_all(client)
    assert _ids(first, "farms") == {str(F1), str(F2)}
    assert str(FIELD2) in _ids(first, "fields")
    with tenant_context(tenant):
        container_access_revoke(user=user, container=f2, level=AccessLevel.VIEW)
    second, deleted, cursor, pages = pull_all(client, cursor=cursor, limit=1)
    assert {page["strategy"] for page in pages} == {"incremental"}
    assert len(pages) > 2
    assert deleted["farms"] == {str(F2)}
    assert str(FIELD2) in deleted["fields"]
    assert not _ids(second, "farms") & {str(F2)}
    # Regaining it sends its rows again, as upserts.
    with tenant_context(tenant):
        container_access_grant(user=user, container=f2, level=AccessLevel.VIEW)
    third, deleted, cursor, _ = pull_all(client, cursor=cursor, limit=2)
    assert _ids(third, "farms") == {str(F2)}
    assert str(FIELD2) in _ids(third, "fields")
    assert not any(deleted.values())
    # The change is delivered: nothing more.
    again, gone, _, _ = pull_all(client, cursor=cursor)
    assert not any(again.values())
    assert not any(gone.values())


@pytest.mark.usefixtures("live_db")
def test_a_row_moving_out_of_scope_becomes_a_tombstone(live: SyncWorld) -> None:
    tenant = live.world.tenant
    with tenant_context(tenant):
        user = make_user(email=f"agent-{uuid.uuid4().hex[:6]}@example.com", role=Role.FIELD_AGENT)
        container_access_grant(user=user, container=Farm.objects.get(pk=F1), level=AccessLevel.VIEW)
        obs = Observation.objects.create(
            field_id=FIELD1,
            observed_at=timezone.now() - dt.timedelta(hours=1),
            kind="note",
            text="moves",
        )
    client = _as(live, user.email)
    first, _, cursor, _ = pull_all(client, tables="observations")
    assert str(obs.pk) in _ids(first, "observations")
    with tenant_context(tenant):
        Observation.objects.filter(pk=obs.pk).update(field_id=FIELD2)  # to farm F2
    _, deleted, _, _ = pull_all(client, cursor=cursor, tables="observations")
    assert deleted["observations"] == {str(obs.pk)}


def test_a_page_over_the_byte_budget_stops_early(sync_alpha: SyncWorld, settings: Any) -> None:
    client = login(sync_alpha.world)
    full, _, _, _ = pull_all(client, tables="observations")
    settings.SYNC_PULL_MAX_BYTES = 600  # about one observation
    small, _, _, pages = pull_all(client, tables="observations", limit=50)
    assert len(pages) >= len(full["observations"])
    assert set(small["observations"]) == set(full["observations"])


def test_an_unknown_wire_format_is_400_naming_the_parameter(sync_alpha: SyncWorld) -> None:
    client = sync_alpha.farms.agent_client()
    pulled = client.get("/api/v1/sync/pull/", {"format": "xml"})
    assert error(pulled, 400)["fields"] == {"format": ["format must be one of: json, wmdb."]}
    pushed = client.post(
        "/api/v1/sync/push/?format=xml",
        data=b'{"changes": {}}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="format-probe",
    )
    assert error(pushed, 400)["fields"] == {"format": ["format must be one of: json, wmdb."]}
