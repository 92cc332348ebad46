"""Content negotiation on the farm exports (issue 17, item 4): the GeoJSON export accepts
``application/geo+json`` (and ``application/json``, GeoJSON being JSON), the observation export
``text/csv``, both ``*/*``; anything else is a 406 in the JSON envelope, as is every other error.
Alpha and beta hold fields and observations with the same ids."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from tests.farms.conftest import EAST_BBOX, FIELD1, FIELD2, OBS1, OBS2, FarmWorld, streamed

GEOJSON_URL = "/api/v1/farms/fields/geojson/"
CSV_URL = "/api/v1/farms/observations/export/"


def _envelope(response: Any, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    error = json.loads(response.content)["error"]
    assert (error["status"], error["code"]) == (status, code)


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("application/geo+json", "application/geo+json"),
        ("application/json", "application/json"),
        ("*/*", "application/geo+json"),
        ("text/csv;q=0.5, application/geo+json", "application/geo+json"),
    ],
)
def test_geojson_accepts_its_own_type(
    farm_alpha: FarmWorld, farm_beta: FarmWorld, accept: str, content_type: str
) -> None:
    response = farm_alpha.admin_client().get(GEOJSON_URL, HTTP_ACCEPT=accept)
    assert response["Content-Type"] == content_type
    body = json.loads(streamed(response))
    assert {feature["id"] for feature in body["features"]} == {str(FIELD1), str(FIELD2)}
    assert {f["properties"]["name"] for f in body["features"]} == {
        "alpha maize block",
        "alpha bean block",
    }
    # The same ids on beta's host are beta's fields, filtered by the declared bbox too.
    beta = farm_beta.admin_client().get(f"{GEOJSON_URL}?bbox={EAST_BBOX}", HTTP_ACCEPT=accept)
    features = json.loads(streamed(beta))["features"]
    assert [f["properties"]["name"] for f in features] == ["beta bean block"]


@pytest.mark.parametrize("accept", ["text/csv", "application/xml", "image/png"])
def test_geojson_refuses_other_types(farm_alpha: FarmWorld, accept: str) -> None:
    _envelope(farm_alpha.admin_client().get(GEOJSON_URL, HTTP_ACCEPT=accept), 406, "not_acceptable")


@pytest.mark.parametrize("accept", ["text/csv", "text/*", "*/*", "text/csv; charset=utf-8"])
def test_csv_export_accepts_its_own_type(
    farm_alpha: FarmWorld, farm_beta: FarmWorld, accept: str
) -> None:
    response = farm_alpha.admin_client().get(CSV_URL, HTTP_ACCEPT=accept)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.DictReader(io.StringIO(streamed(response).decode())))
    assert {row["id"] for row in rows} == {str(OBS1), str(OBS2)}
    assert {row["text"] for row in rows} == {"alpha west rain", "alpha east rain"}
    beta = farm_beta.admin_client().get(CSV_URL, HTTP_ACCEPT=accept)
    beta_rows = list(csv.DictReader(io.StringIO(streamed(beta).decode())))
    assert {row["text"] for row in beta_rows} == {"beta west rain", "beta east rain"}


@pytest.mark.parametrize("accept", ["application/json", "application/geo+json"])
def test_csv_export_refuses_json_with_the_envelope(farm_alpha: FarmWorld, accept: str) -> None:
    _envelope(farm_alpha.admin_client().get(CSV_URL, HTTP_ACCEPT=accept), 406, "not_acceptable")


def test_export_errors_are_json_whatever_was_accepted(farm_alpha: FarmWorld) -> None:
    client = farm_alpha.admin_client()
    _envelope(
        client.get(f"{CSV_URL}?observed_after=not-a-date", HTTP_ACCEPT="text/csv"),
        400,
        "validation_error",
    )
    _envelope(
        client.get(f"{GEOJSON_URL}?bbox=1,2", HTTP_ACCEPT="application/geo+json"),
        400,
        "validation_error",
    )
    anonymous = farm_alpha.world.client().get(CSV_URL, HTTP_ACCEPT="text/csv")
    assert anonymous.status_code == 401
    assert anonymous["Content-Type"] == "application/json"
