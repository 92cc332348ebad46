"""URL path versioning and the deprecation helper, with a toy v0."""

from datetime import UTC, datetime

import pytest

from tests.apikit.conftest import ToyWorld
from tests.conftest import login

pytestmark = pytest.mark.urls("tests.apikit.urls")


def test_current_version_has_no_deprecation_headers(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).get("/api/v1/toy/items/")
    assert response.status_code == 200
    assert not response.has_header("Deprecation")
    assert not response.has_header("Sunset")


def test_deprecated_version_announces_its_sunset(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).get("/api/v0/toy/items/")
    assert response.status_code == 200
    assert response["Deprecation"] == f"@{int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())}"
    assert response["Sunset"] == "Thu, 01 Jan 2099 00:00:00 GMT"
    assert response["Link"] == '<https://docs.verdant.example/v1>; rel="deprecation"'


def test_version_past_its_sunset_answers_410(toy_alpha: ToyWorld, settings: object) -> None:
    from django.conf import settings as django_settings

    lifecycle = {"v0": {"deprecated": "2020-01-01", "sunset": "2021-01-01"}}
    original = django_settings.API_VERSION_LIFECYCLE
    django_settings.API_VERSION_LIFECYCLE = lifecycle
    try:
        response = login(toy_alpha.world).get("/api/v0/toy/items/")
    finally:
        django_settings.API_VERSION_LIFECYCLE = original
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "version_retired"
    assert response["Sunset"] == "Fri, 01 Jan 2021 00:00:00 GMT"


def test_request_version_is_available_to_views(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    assert client.get("/api/v1/auth/me/").status_code == 200
    assert client.get("/api/v9/auth/me/").status_code == 404
