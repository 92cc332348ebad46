"""Scope changes delivered to the real WatermelonDB client in small pages (limit 3): a second
farm granted (its rows arrive) and revoked (they leave), at limits 2 and 5, a grant revoked while the device is
part-way through the paged run that delivers it (and a revoke undone part-way), and a role
change that loses tables. Each change spans several pages (farm 2 holds a dozen rows), and after
each the device equals what the server lets the user see.

The scenarios use users of their own (made through the API), so the world's users keep the
scope the other tests expect."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.sync.wmdb import ServerClient, WmdbDevice, assert_device_matches_server, device
from tests.sync_client.conftest import ClientWorld
from tests.sync_client.helpers import (
    FACILITY,
    FARM,
    FARM_2,
    FIELD_2,
    field_create,
    ids,
    observation_create,
    planting_create,
    tag,
)

LIMIT = 3
FARM_TABLES = ("farms", "fields", "crops", "plantings", "observations", "harvests")


@dataclass(frozen=True)
class ScopeUsers:
    agent: str  # a field agent with view on farm 1
    viewer: str  # a viewer with view on farm 1 and the facility


AGENT_EMAIL = "scope-agent@example.com"
VIEWER_EMAIL = "scope-viewer@example.com"
RECEPTIONIST_EMAIL = "scope-receptionist@example.com"


@pytest.fixture(scope="module")
def scope_users(client_world: ClientWorld) -> ScopeUsers:
    cw = client_world
    admin = cw.client(cw.a, "tenant_admin", device_name=None)
    agent = cw.user_create(cw.a, "field_agent", AGENT_EMAIL)
    viewer = cw.user_create(cw.a, "viewer", VIEWER_EMAIL)
    for user in (agent, viewer):
        admin.ok(admin.post(f"/api/v1/farms/{FARM}/access/", {"user": user, "level": "view"}))
    admin.ok(
        admin.post(
            f"/api/v1/clinical/facilities/{FACILITY}/access/", {"user": viewer, "level": "view"}
        )
    )
    # Farm 2 gets enough rows for every change to take several pages at LIMIT.
    for _ in range(2):
        planting_create(admin, field=FIELD_2)
    for n in range(6):
        observation_create(admin, field=FIELD_2, text=f"farm 2 observation {n}")
    return ScopeUsers(agent=agent, viewer=viewer)


@pytest.fixture
def agent(
    cw: ClientWorld, scope_users: ScopeUsers, request: pytest.FixtureRequest
) -> Iterator[tuple[WmdbDevice, ServerClient, ServerClient]]:
    """The agent's device (first sync done, farm 1 only; pages of ``LIMIT`` rows unless the test
    is parametrized with ``limit``), its client and the admin's."""
    limit = getattr(request, "param", LIMIT)
    client = cw.client(cw.a, "field_agent", email=AGENT_EMAIL, device_name="scope")
    admin = cw.client(cw.a, "tenant_admin", device_name=None)
    cw.settle()
    with device(client, limit=limit, name="scope-agent") as phone:
        phone.sync()
        assert ids(assert_device_matches_server(phone, client), "farms") == {FARM}
        try:
            yield phone, client, admin
        finally:
            admin.delete(f"/api/v1/farms/{FARM_2}/access/{scope_users.agent}/")


def _farm_2_rows(dump: dict[str, list[dict[str, Any]]]) -> set[str]:
    rows = {row["id"] for row in dump["farms"] if row["id"] == FARM_2}
    rows |= {row["id"] for row in dump["fields"] if row["farm_id"] == FARM_2}
    for table in ("plantings", "observations"):
        rows |= {row["id"] for row in dump[table] if row["field_id"] == FIELD_2}
    return rows


def _page_rows(pull: dict[str, Any]) -> int:
    return sum(sum(counts.values()) for counts in pull["counts"].values())


def _paged(reply: dict[str, Any], *, limit: int = LIMIT, at_least: int = 3) -> None:
    """The sync took several pages (``at_least``), none over ``limit`` rows (ids of deleted rows
    included), every page but the last saying ``has_more``."""
    pulls = reply["pulls"]
    assert len(pulls) >= at_least, [pull["counts"] for pull in pulls]
    assert all(_page_rows(pull) <= limit for pull in pulls), [pull["counts"] for pull in pulls]
    assert all(pull["status"] == 200 for pull in pulls)
    assert all(pull["experimentalStrategy"] == "incremental" for pull in pulls)
    assert [pull["has_more"] for pull in pulls] == [True] * (len(pulls) - 1) + [False]


@pytest.mark.parametrize("agent", [2, 5], indirect=True, ids=["limit2", "limit5"])
def test_a_granted_farm_arrives_and_a_revoked_one_leaves_in_pages(
    cw: ClientWorld,
    scope_users: ScopeUsers,
    agent: tuple[WmdbDevice, ServerClient, ServerClient],
) -> None:
    phone, client, admin = agent
    limit = phone.limit
    assert limit is not None
    admin.ok(
        admin.post(f"/api/v1/farms/{FARM_2}/access/", {"user": scope_users.agent, "level": "view"})
    )
    cw.settle()
    reply = phone.sync()
    dump = assert_device_matches_server(phone, client)
    assert ids(dump, "farms") == {FARM, FARM_2}
    farm_2 = _farm_2_rows(dump)
    assert len(farm_2) >= 10
    _paged(reply, limit=limit, at_least=-(-len(farm_2) // limit))

    admin.ok(admin.delete(f"/api/v1/farms/{FARM_2}/access/{scope_users.agent}/"), 204)
    cw.settle()
    reply = phone.sync()
    _paged(reply, limit=limit, at_least=-(-len(farm_2) // limit))
    deleted = sum(
        counts["deleted"] for pull in reply["pulls"] for counts in pull["counts"].values()
    )
    assert deleted >= len(farm_2)
    dump = assert_device_matches_server(phone, client)
    assert ids(dump, "farms") == {FARM}
    assert not _farm_2_rows(dump)


def test_a_grant_revoked_after_the_first_page_and_a_revoke_undone(
    cw: ClientWorld,
    scope_users: ScopeUsers,
    agent: tuple[WmdbDevice, ServerClient, ServerClient],
) -> None:
    phone, client, admin = agent
    grant = {"user": scope_users.agent, "level": "view"}
    revoke = f"/api/v1/farms/{FARM_2}/access/{scope_users.agent}/"

    # Granted; the device takes one page of the delivery; revoked; the device goes on.
    admin.ok(admin.post(f"/api/v1/farms/{FARM_2}/access/", grant))
    cw.settle()
    first = phone.sync(max_rounds=1)
    assert first["pulls"][0]["has_more"] is True
    assert _farm_2_rows(phone.dump())  # part of farm 2 is on the device
    admin.ok(admin.delete(revoke), 204)
    cw.settle()
    reply = phone.sync()
    assert reply["pulls"][-1]["has_more"] is False
    dump = assert_device_matches_server(phone, client)
    assert ids(dump, "farms") == {FARM}
    assert not _farm_2_rows(dump)

    # Granted and fully delivered; revoked; one page of the removal; granted again.
    admin.ok(admin.post(f"/api/v1/farms/{FARM_2}/access/", grant))
    cw.settle()
    phone.sync()
    held = _farm_2_rows(assert_device_matches_server(phone, client))
    admin.ok(admin.delete(revoke), 204)
    cw.settle()
    first = phone.sync(max_rounds=1)
    assert first["pulls"][0]["has_more"] is True
    assert _farm_2_rows(phone.dump()) < held  # part of farm 2 is gone
    admin.ok(admin.post(f"/api/v1/farms/{FARM_2}/access/", grant))
    cw.settle()
    phone.sync()
    dump = assert_device_matches_server(phone, client)
    assert _farm_2_rows(dump) == held


def test_a_role_change_that_loses_tables(cw: ClientWorld, scope_users: ScopeUsers) -> None:
    """A viewer (farms and clinic, patients without the phone column) becomes a receptionist
    (clinic only, with phones): every row of the farm tables leaves in pages, and the patients
    come again with the column the new role may see. (A device at schema version 2, so harvests
    are among the tables lost.)"""
    client = cw.client(cw.a, "viewer", email=VIEWER_EMAIL, device_name="scope")
    admin = cw.client(cw.a, "tenant_admin", device_name=None)
    cw.settle()
    try:
        with device(client, limit=LIMIT, schema_version=2, name="scope-viewer") as phone:
            phone.sync()
            dump = assert_device_matches_server(phone, client)
            assert all(dump[table] for table in FARM_TABLES)
            assert dump["patients"]
            assert {row["phone"] for row in dump["patients"]} == {""}  # not for a viewer

            admin.ok(admin.patch(f"/api/v1/users/{scope_users.viewer}/", {"role": "receptionist"}))
            # Other server processes drop their cached copy of the user within a second.
            time.sleep(1.5)
            cw.settle()
            reply = phone.sync()
            _paged(reply, at_least=2)
            dump = assert_device_matches_server(phone, client)
            assert not any(dump[table] for table in FARM_TABLES)
            assert dump["patients"]
            assert dump["appointments"]
            assert all(row["phone"] for row in dump["patients"])
    finally:
        admin.patch(f"/api/v1/users/{scope_users.viewer}/", {"role": "viewer"})


def test_an_archived_farm_leaves_in_pages(cw: ClientWorld, scope_users: ScopeUsers) -> None:
    """docs/sync.md, section 8: a farm archived on the server leaves the device like a revoked
    grant, everything under it included."""
    admin = cw.client(cw.a, "tenant_admin", device_name=None)
    farm = admin.ok(admin.post("/api/v1/farms/", {"name": f"archived farm {tag()}"}), 201)["id"]
    field = field_create(admin, farm=farm)
    planting = planting_create(admin, field=field)
    under = {farm, field, planting}
    under |= {observation_create(admin, field=field, planting=planting) for _ in range(4)}
    admin.ok(
        admin.post(f"/api/v1/farms/{farm}/access/", {"user": scope_users.agent, "level": "view"})
    )
    client = cw.client(cw.a, "field_agent", email=AGENT_EMAIL, device_name="scope")
    cw.settle()
    with device(client, limit=LIMIT, name="scope-archived") as phone:
        phone.sync()
        dump = assert_device_matches_server(phone, client)
        held = {row["id"] for table in FARM_TABLES[:-1] for row in dump[table]}
        assert under <= held
        admin.ok(admin.delete(f"/api/v1/farms/{farm}/"), 204)
        cw.settle()
        reply = phone.sync()
        _paged(reply, at_least=-(-len(under) // LIMIT))
        dump = assert_device_matches_server(phone, client)
        assert under.isdisjoint({row["id"] for table in FARM_TABLES[:-1] for row in dump[table]})


def test_a_role_change_that_loses_a_column_clears_it(cw: ClientWorld) -> None:
    """A receptionist (patients with phones) becomes a viewer (patients without the phone
    column; the farm tables gained, crops only without a farm grant). The patients are resent
    with ``phone`` empty: WatermelonDB merges a pulled row onto the local one (``resolveConflict``:
    ``{...local, ...remote}``), so a row sent without the column would leave the old numbers on
    the device (what the server did until a320863)."""
    admin = cw.client(cw.a, "tenant_admin", device_name=None)
    user = cw.user_create(cw.a, "receptionist", RECEPTIONIST_EMAIL)
    admin.ok(
        admin.post(
            f"/api/v1/clinical/facilities/{FACILITY}/access/", {"user": user, "level": "view"}
        )
    )
    client = cw.client(cw.a, "receptionist", email=RECEPTIONIST_EMAIL, device_name="scope")
    cw.settle()
    try:
        with device(client, limit=LIMIT, name="scope-receptionist") as phone:
            phone.sync()
            before = assert_device_matches_server(phone, client)
            assert before["patients"]
            assert all(row["phone"] for row in before["patients"])
            assert not before["crops"]

            admin.ok(admin.patch(f"/api/v1/users/{user}/", {"role": "viewer"}))
            time.sleep(1.5)  # other server processes drop their cached copy of the user
            cw.settle()
            reply = phone.sync()
            _paged(reply, at_least=1)
            resent = sum(pull["counts"]["patients"]["updated"] for pull in reply["pulls"])
            assert resent >= len(before["patients"])
            dump = assert_device_matches_server(phone, client)
            assert dump["crops"]  # the farm tables arrived (no farm grant: crops only)
            assert {row["phone"] for row in dump["patients"]} == {""}
    finally:
        admin.patch(f"/api/v1/users/{user}/", {"role": "receptionist"})
