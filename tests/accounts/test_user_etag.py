"""Issue 19, item 8 (user detail): ``ETag`` and ``version`` on users/{id}/, with If-None-Match,
If-Match (412) and a stale body version (409), as on every other mutable resource."""

from __future__ import annotations

from typing import Any

from tests.conftest import CLINICIAN_ID, TenantWorld, login

DETAIL = f"/api/v1/users/{CLINICIAN_ID}/"


def _code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def test_detail_carries_etag_and_version(alpha: TenantWorld) -> None:
    admin = login(alpha)
    response = admin.get(DETAIL)
    assert response.status_code == 200
    version = response.json()["version"]
    assert response["ETag"] == f'W/"{version}"'
    not_modified = admin.get(DETAIL, HTTP_IF_NONE_MATCH=response["ETag"])
    assert not_modified.status_code == 304
    assert not_modified["ETag"] == response["ETag"]


def test_stale_if_match_is_412_and_stale_version_is_409(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    admin = login(alpha)
    etag = admin.get(DETAIL)["ETag"]
    changed = admin.patch(DETAIL, {"full_name": "Dr A"}, format="json", HTTP_IF_MATCH=etag)
    assert changed.status_code == 200, changed.content
    assert changed.json()["version"] == 2
    assert changed["ETag"] == 'W/"2"'
    stale = admin.patch(DETAIL, {"full_name": "Dr B"}, format="json", HTTP_IF_MATCH=etag)
    assert stale.status_code == 412
    assert _code(stale) == "precondition_failed"
    old_body = admin.patch(DETAIL, {"full_name": "Dr B", "version": 1}, format="json")
    assert old_body.status_code == 409
    assert _code(old_body) == "version_conflict"
    current = admin.patch(DETAIL, {"full_name": "Dr C", "version": 2}, format="json")
    assert current.status_code == 200
    assert current.json()["version"] == 3
    bad = admin.patch(DETAIL, {"version": "two"}, format="json")
    assert bad.status_code == 400
    # The colliding user of the other tenant kept its own version and name.
    other = login(beta).get(DETAIL).json()
    assert other["version"] == 1
    assert other["full_name"] == "beta clinician"


def test_every_write_moves_the_version(alpha: TenantWorld) -> None:
    admin = login(alpha)
    before = admin.get(DETAIL).json()["version"]
    after_password = admin.post(
        f"{DETAIL}set-password/", {"password": "Another-Clinician-9"}, format="json"
    )
    assert after_password.json()["version"] == before + 1
    deactivated = admin.post(f"{DETAIL}deactivate/")
    assert deactivated.json()["version"] == before + 2
    assert deactivated["ETag"] == f'W/"{before + 2}"'
