"""Offline sync from tenant A against tenant B: pushes that name B's rows (B-only ids, colliding
ids, references to B-only parents) and pulls with B's cursor. Nothing of B is returned or
changed. Skipped until the sync routes exist."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from django.urls import reverse

from tests.security.conftest import SecurityWorld
from tests.security.world import B_ONLY, SHARED, schema_fingerprint

pytestmark = pytest.mark.security


def _url(name: str) -> str:
    return reverse(name, urlconf="settings.urls", kwargs={"version": "v1"})


def _text(response: Any) -> str:
    return response.content.decode(errors="replace")


def _push(sw: SecurityWorld, role: str, changes: dict[str, Any], atomic: str = "row") -> Any:
    return sw.client(sw.a, role).post(
        _url("sync-push"),
        {"atomic": atomic, "changes": changes},
        format="json",
        HTTP_IDEMPOTENCY_KEY=str(uuid.uuid4()),
    )


def _attack_changes() -> dict[str, Any]:
    return {
        "observations": [
            # A new row under B's field (an id only B has).
            {
                "op": "upsert",
                "id": str(uuid.uuid4()),
                "base_version": None,
                "fields": {
                    "field_id": str(B_ONLY["farms.field"]),
                    "observed_at": "2026-05-01T07:30:00Z",
                    "kind": "rainfall",
                    "value": 1,
                    "unit": "mm",
                },
            },
            # An update of B's own row, by its id.
            {
                "op": "upsert",
                "id": str(B_ONLY["farms.observation"]),
                "base_version": 1,
                "fields": {"text": "ATTACK"},
            },
            {"op": "delete", "id": str(B_ONLY["farms.observation"]), "base_version": 1},
        ],
        "plantings": [
            # The colliding id: may only ever touch A's row.
            {
                "op": "upsert",
                "id": str(SHARED["farms.planting"]),
                "base_version": 1,
                "changed": ["season"],
                "fields": {"season": "ATTACK season"},
            },
            {
                "op": "upsert",
                "id": str(uuid.uuid4()),
                "base_version": None,
                "fields": {
                    "field_id": str(B_ONLY["farms.field"]),
                    "crop_id": str(B_ONLY["farms.crop"]),
                    "season": "ATTACK",
                    "planted_on": "2026-03-01",
                },
            },
        ],
        "harvests": [
            {"op": "delete", "id": str(B_ONLY["farms.harvest"]), "base_version": 1},
        ],
        "patients": [
            {
                "op": "upsert",
                "id": str(uuid.uuid4()),
                "base_version": None,
                "fields": {
                    "facility_id": str(B_ONLY["clinical.facility"]),
                    "mrn": "SYNC-ATTACK",
                    "given_name": "x",
                    "family_name": "y",
                    "birth_date": "1990-01-01",
                },
            },
            {
                "op": "upsert",
                "id": str(B_ONLY["clinical.patient"]),
                "base_version": 1,
                "fields": {"given_name": "ATTACK"},
            },
        ],
    }


@pytest.mark.parametrize(
    "role", ["tenant_admin", "agronomist", "field_agent", "clinician", "nurse", "viewer"]
)
@pytest.mark.parametrize("atomic", ["row", "all"])
def test_push_cannot_create_change_or_delete_rows_of_b(
    sw: SecurityWorld, role: str, atomic: str
) -> None:
    before = schema_fingerprint(sw.b.schema)
    response = _push(sw, role, _attack_changes(), atomic=atomic)
    text = _text(response)
    assert response.status_code < 500, text
    assert sw.b.marker not in text
    if response.status_code == 200:
        # No upsert naming B's rows applies. (A delete of an id A does not have may report
        # "applied" — deletes are idempotent — and the fingerprint below proves B kept it.)
        upserted_b_only = {
            row["id"]
            for rows in _attack_changes().values()
            for row in rows
            if row["op"] == "upsert" and uuid.UUID(row["id"]) in set(B_ONLY.values())
        }
        for result in response.json().get("results", []):
            if result.get("id") in upserted_b_only:
                assert result.get("status") not in {"applied", "merged"}, result
    assert schema_fingerprint(sw.b.schema) == before, "a push from A changed B's rows"


@pytest.mark.parametrize("role", ["tenant_admin", "field_agent", "agronomist", "clinician"])
def test_pull_with_b_cursor_returns_nothing_of_b(sw: SecurityWorld, role: str) -> None:
    url = _url("sync-pull")
    b_pull = sw.client(sw.b, role).get(url)
    assert b_pull.status_code in {200, 403}, _text(b_pull)
    own = sw.client(sw.a, role).get(url)
    assert own.status_code < 500
    assert sw.b.marker not in _text(own)
    if b_pull.status_code != 200:
        return
    cursor = b_pull.json().get("cursor")
    assert cursor
    replayed = sw.client(sw.a, role).get(url, {"cursor": cursor})
    text = _text(replayed)
    assert replayed.status_code in {200, 400, 410}, text
    assert sw.b.marker not in text
