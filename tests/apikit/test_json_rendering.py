"""The API's one JSON encoder (apikit/json.py): its formats, its refusals, and proof that every
endpoint renders through it (settings, every DRF view in the URL confs, no stray orjson.dumps)."""

from __future__ import annotations

import ast
import datetime
import enum
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import orjson
import pytest
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver, path
from django.utils.translation import gettext_lazy
from drf_spectacular.views import SpectacularAPIView
from rest_framework.exceptions import ErrorDetail
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.serializer_helpers import ReturnDict
from rest_framework.views import APIView

from apikit.json import JSONRenderer, dumps
from settings.urls import handler404, handler500
from settings.urls import urlpatterns as tenant_urlpatterns
from tests.conftest import TenantWorld, login

UTC = datetime.UTC
ROOT = Path(__file__).resolve().parents[2]


# --- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        # Zero microseconds are still written (drf-orjson-renderer's UTC option drops them).
        (datetime.datetime(2026, 12, 6, 5, 54, 19, tzinfo=UTC), "2026-12-06T05:54:19.000000Z"),
        (datetime.datetime(2026, 12, 6, 5, 54, 19, 7, tzinfo=UTC), "2026-12-06T05:54:19.000007Z"),
        # Aware values in another zone are converted to UTC.
        (
            datetime.datetime(2026, 12, 6, 6, 54, 19, 250000, tzinfo=ZoneInfo("Europe/Berlin")),
            "2026-12-06T05:54:19.250000Z",
        ),
        (
            datetime.datetime(
                2026, 12, 5, 23, 24, 19, tzinfo=datetime.timezone(-datetime.timedelta(hours=6.5))
            ),
            "2026-12-06T05:54:19.000000Z",
        ),
        (
            datetime.datetime(2026, 12, 6, 5, 54, 19, tzinfo=ZoneInfo("UTC")),
            "2026-12-06T05:54:19.000000Z",
        ),
        (datetime.datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), "0999-01-02T03:04:05.000000Z"),
    ],
)
def test_datetimes_are_utc_with_microseconds_and_z(value: datetime.datetime, text: str) -> None:
    assert dumps(value) == f'"{text}"'.encode()
    assert dumps({"at": [value]}) == f'{{"at":["{text}"]}}'.encode()


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable") as refused:
        dumps({"at": datetime.datetime(2026, 12, 6, 5, 54, 19)})  # noqa: DTZ001
    # orjson raises its own TypeError, caused by ours (which says why).
    assert "naive datetime" in str(refused.value.__cause__)


def test_dates_times_uuids_decimals_as_drf_writes_them() -> None:
    value = {
        "date": datetime.date(2026, 12, 6),
        "time": datetime.time(5, 54, 19),
        "time_us": datetime.time(5, 54, 19, 123),
        "id": uuid.UUID("01900000-0000-7000-8000-00000000A001"),
        "amount": Decimal("1.10"),
        "tiny": Decimal("0.001"),
    }
    assert orjson.loads(dumps(value)) == {
        "date": "2026-12-06",
        "time": "05:54:19",
        "time_us": "05:54:19.000123",
        "id": "01900000-0000-7000-8000-00000000a001",
        # Strings, as serializers write decimals (COERCE_DECIMAL_TO_STRING): no float rounding.
        "amount": "1.10",
        "tiny": "0.001",
    }


def test_an_aware_time_is_refused() -> None:
    with pytest.raises(TypeError, match="not JSON serializable") as refused:
        dumps(datetime.time(5, 54, tzinfo=UTC))
    assert "aware time" in str(refused.value.__cause__)


def test_lazy_translations_and_drf_containers_are_written() -> None:
    class Colour(enum.Enum):
        RED = "red"

    data = ReturnDict(
        {
            "detail": gettext_lazy("Not found."),
            "error": ErrorDetail("bad", code="invalid"),
            "colour": Colour.RED,
        },
        serializer=cast(Any, None),  # a bare ReturnDict, as a serializer's .data
    )
    assert dumps(data) == b'{"detail":"Not found.","error":"bad","colour":"red"}'


def test_non_str_keys_are_written_as_text() -> None:
    key = uuid.UUID(int=1)
    data = {1: "a", key: "b", datetime.date(2026, 12, 6): "c", None: "d"}
    assert orjson.loads(dumps(data)) == {
        "1": "a",
        str(key): "b",
        "2026-12-06": "c",
        "null": "d",
    }


def _generator() -> Iterator[int]:
    yield 1


@pytest.mark.parametrize(
    "value",
    [object(), {1, 2}, frozenset(), _generator(), b"bytes", datetime.timedelta(seconds=1), 1j],
    ids=["object", "set", "frozenset", "generator", "bytes", "timedelta", "complex"],
)
def test_unknown_types_are_a_type_error_never_null(value: Any) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        dumps({"nested": [value]})


def test_fragments_are_inserted_as_they_are() -> None:
    # Sync pull pages: row arrays PostgreSQL already rendered.
    assert dumps({"rows": orjson.Fragment(b'[{"a":1}]')}) == b'{"rows":[{"a":1}]}'


def test_renderer_is_drf_compatible() -> None:
    renderer = JSONRenderer()
    assert (renderer.media_type, renderer.format, renderer.charset) == (
        "application/json",
        "json",
        None,
    )
    assert renderer.render(None) == b""
    assert renderer.render({"a": [1]}) == b'{"a":[1]}'
    assert renderer.render({"a": 1}, "application/json; indent=4") == b'{\n  "a": 1\n}'
    # The browsable API asks for an indent through the context.
    assert renderer.render({"a": 1}, None, {"indent": 4}) == b'{\n  "a": 1\n}'


# --- through a request -------------------------------------------------------------------------


class _TimestampView(APIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        at = datetime.datetime(2026, 12, 6, 6, 54, 19, tzinfo=ZoneInfo("Europe/Berlin"))
        return Response({"at": at, "id": uuid.UUID(int=5), "on": at.date()})


class _UnknownTypeView(APIView):
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response({"id": "x", "value": {"a", "set"}})


urlpatterns = [
    path("api/<str:version>/json-test/timestamp/", _TimestampView.as_view()),
    path("api/<str:version>/json-test/unknown/", _UnknownTypeView.as_view()),
    *tenant_urlpatterns,
]
__all__ = ["handler404", "handler500", "urlpatterns"]


@pytest.mark.urls("tests.apikit.test_json_rendering")
def test_a_response_is_rendered_by_the_one_encoder(alpha: TenantWorld) -> None:
    response = login(alpha).get("/api/v1/json-test/timestamp/")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.content == (
        b'{"at":"2026-12-06T05:54:19.000000Z",'
        b'"id":"00000000-0000-0000-0000-000000000005","on":"2026-12-06"}'
    )


@pytest.mark.urls("tests.apikit.test_json_rendering")
def test_an_unknown_type_is_a_500_envelope_not_null(
    alpha: TenantWorld, caplog: pytest.LogCaptureFixture
) -> None:
    client = login(alpha)
    client.raise_request_exception = False  # as in production: handler500 answers
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/json-test/unknown/")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "server_error"
    assert b"null" not in response.content
    assert b"set" not in response.content  # the internals stay in the log
    assert any(
        record.exc_info and isinstance(record.exc_info[1], TypeError) for record in caplog.records
    )


# --- every endpoint uses it --------------------------------------------------------------------

# Views allowed another JSON renderer, each with its reason.
OTHER_JSON_RENDERER_ALLOWED = {
    SpectacularAPIView: (
        "The OpenAPI document is drf-spectacular's, not API data: its own YAML/JSON renderers "
        "write the schema's Decimal bounds (minimum, maximum) as numbers, which the API's "
        "encoder writes as strings."
    ),
}


def _drf_views(patterns: list[Any]) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _drf_views(pattern.url_patterns)
        elif isinstance(pattern, URLPattern):
            view_class = getattr(pattern.callback, "cls", None)
            if view_class is not None:
                initkwargs = getattr(pattern.callback, "initkwargs", None) or {}
                yield str(pattern.pattern), view_class, initkwargs


def _json_renderers(renderers: Any) -> list[type]:
    return [renderer for renderer in renderers if "json" in renderer.media_type]


def test_settings_name_the_one_renderer() -> None:
    configured: Any = api_settings.DEFAULT_RENDERER_CLASSES  # imported from the dotted paths
    assert configured == [JSONRenderer]
    assert settings.REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"] == ["apikit.json.JSONRenderer"]


@pytest.mark.parametrize("urlconf", ["settings.urls", "settings.urls_public"])
def test_every_drf_view_renders_json_with_the_one_renderer(urlconf: str) -> None:
    seen = []
    for route, view_class, initkwargs in _drf_views(get_resolver(urlconf).url_patterns):
        if view_class in OTHER_JSON_RENDERER_ALLOWED:
            continue
        # A viewset action may name its own renderers (@action(renderer_classes=...)).
        renderers = initkwargs.get("renderer_classes", view_class.renderer_classes)
        for renderer in _json_renderers(renderers):
            assert issubclass(renderer, JSONRenderer), f"{route}: {view_class} uses {renderer}"
        seen.append(view_class.__name__)
    if urlconf == "settings.urls":
        # The walk really reached the endpoints that used to have encoders of their own.
        assert {"PullView", "PushView", "PatientViewSet"} <= set(seen), seen


# Project code that may call orjson.dumps itself, each with its reason; responses go through
# apikit.json.dumps.
ORJSON_DUMPS_ALLOWED = {
    "platform/apikit/json.py": "the one encoder",
    "platform/sync/cursor.py": "the cursor token's signed payload, not a response body",
    "platform/sync/push/sql.py": "JSON column values bound as SQL parameters, not a response body",
}
PROJECT_DIRS = ("clinical", "farms", "observability", "platform", "settings", "tenants")


def test_no_other_code_encodes_json_with_orjson() -> None:
    found = set()
    for directory in PROJECT_DIRS:
        for file in (ROOT / directory).rglob("*.py"):
            tree = ast.parse(file.read_text(), filename=str(file))
            for node in ast.walk(tree):
                if (
                    isinstance(node, ast.Attribute)
                    and node.attr == "dumps"
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "orjson"
                ) or (
                    isinstance(node, ast.ImportFrom)
                    and node.module == "orjson"
                    and any(alias.name == "dumps" for alias in node.names)
                ):
                    found.add(file.relative_to(ROOT).as_posix())
    assert found <= set(ORJSON_DUMPS_ALLOWED), sorted(found - set(ORJSON_DUMPS_ALLOWED))
