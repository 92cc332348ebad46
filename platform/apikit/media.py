"""Content negotiation for the endpoints whose body is not the API's JSON (issue 17, item 4):
document downloads, GeoJSON and CSV exports, NDJSON, FHIR resources.

An action says once what it answers with ``@produces(...)``; from that one declaration

- the base viewset gives DRF the action's renderers (``TenantScopedViewSet.get_renderers``), so
  DRF's own negotiation accepts those media types and ``*/*`` in ``Accept`` and answers 406 (in
  the error envelope) for anything else, before the action runs;
- the OpenAPI schema (apikit.schema) declares exactly those media types for the success response,
  as ``OpenApiTypes.BINARY`` or, for a JSON body (FHIR, GeoJSON), as an object;
- the action learns which type was negotiated (``negotiated_media_type``), to label its body.

Errors are the JSON envelope whatever was negotiated: the renderers write a dict (the only thing
an action that writes its own bytes ever hands DRF: an exception's envelope) as JSON with an
``application/json`` Content-Type. A client asking ``Accept: image/png`` for a 404 gets JSON
saying so, not a PNG-labelled error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from rest_framework import exceptions, negotiation, renderers
from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.utils.mediatypes import media_type_matches

from apikit.json import JSONRenderer

JSON = "application/json"
_ERROR_CONTENT_TYPE = JSON
PRODUCES_ATTRIBUTE = "apikit_produces"

Handler = TypeVar("Handler", bound=Callable[..., Any])


def _label_error(renderer_context: Mapping[str, Any] | None) -> None:
    response = (renderer_context or {}).get("response")
    if response is not None and response.status_code >= 400:
        response["Content-Type"] = _ERROR_CONTENT_TYPE


def format_name(media_type: str) -> str:
    """``application/fhir+ndjson`` -> ``fhir+ndjson``, ``image/png`` -> ``png``."""
    return media_type.split(";", 1)[0].split("/", 1)[-1].strip()


class MediaTypeRenderer(JSONRenderer):
    """The base of every ``@produces`` media type's renderer. DRF negotiates with it; a JSON body
    (a FHIR resource, GeoJSON) is the API's JSON bytes, and an action that writes its own body (a
    file, a stream) hands DRF nothing but an error envelope. An error is labelled
    ``application/json`` whatever was negotiated, as on every other endpoint."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        _label_error(renderer_context)
        return super().render(data, accepted_media_type, renderer_context)


class ContentNegotiation(negotiation.DefaultContentNegotiation):
    """DRF's negotiation (REST_FRAMEWORK's DEFAULT_CONTENT_NEGOTIATION_CLASS), except that a
    ``?format=`` naming none of the endpoint's types is a 406, like an ``Accept`` naming none:
    DRF answers 404, which says the resource does not exist."""

    def filter_renderers(
        self, available: Iterable[renderers.BaseRenderer], wanted: str
    ) -> list[renderers.BaseRenderer]:
        available = list(available)
        matching = [renderer for renderer in available if renderer.format == wanted]
        if not matching:
            formats = ", ".join(sorted({str(renderer.format) for renderer in available}))
            raise exceptions.NotAcceptable(
                f"format={wanted!r} is not one of this endpoint's formats: {formats}."
            )
        return matching


_RENDERERS: dict[str, type[renderers.BaseRenderer]] = {}


def renderer_for(media_type: str) -> type[renderers.BaseRenderer]:
    """The renderer class for one media type (one class per type, built once)."""
    if media_type == JSON:
        return JSONRenderer
    if media_type not in _RENDERERS:
        name = "".join(part.title() for part in media_type.replace("+", "/").split("/"))
        _RENDERERS[media_type] = type(
            f"{name.replace('-', '').replace('.', '')}Renderer",
            (MediaTypeRenderer,),
            # The subtype is the renderer's format: DRF's ``?format=ndjson`` picks it too.
            {"media_type": media_type, "format": format_name(media_type)},
        )
    return _RENDERERS[media_type]


@dataclass(frozen=True)
class Produces:
    """What an action answers with: its media types (the first is the default, for ``*/*``), and
    whether the body is JSON (an object in the schema) or opaque bytes (``OpenApiTypes.BINARY``)."""

    media_types: tuple[str, ...]
    json_body: bool
    description: str

    def renderer_classes(self) -> list[type[renderers.BaseRenderer]]:
        return [renderer_for(media_type) for media_type in self.media_types]


def produces(
    *media_types: str, description: str, json_body: bool = False
) -> Callable[[Handler], Handler]:
    """Declare an action's response media types (see the module docstring)."""
    if not media_types:
        raise ValueError("produces() needs at least one media type")

    def mark(handler: Handler) -> Handler:
        setattr(
            handler,
            PRODUCES_ATTRIBUTE,
            Produces(media_types=media_types, json_body=json_body, description=description),
        )
        return handler

    return mark


def declared(view: Any) -> Produces | None:
    """The ``@produces`` declaration of the view's current action, if it has one."""
    action = getattr(view, "action", None)
    handler = getattr(view, action, None) if isinstance(action, str) else None
    found = getattr(handler, PRODUCES_ATTRIBUTE, None)
    return found if isinstance(found, Produces) else None


def negotiated_media_type(request: Request, default: str) -> str:
    """The media type DRF's negotiation chose for this request (without parameters), or
    ``default`` when it chose none."""
    renderer = getattr(request, "accepted_renderer", None)
    media_type = getattr(renderer, "media_type", None)
    return media_type if isinstance(media_type, str) and media_type else default


def media_ranges(header: str) -> list[tuple[str, dict[str, str], float]]:
    """An ``Accept`` header (or a FHIR ``_format`` value) as (type, parameters, q), the type and
    parameter names lower-cased; ranges with ``q=0`` ("not acceptable", RFC 9110 12.4.2) are
    left out, and an unreadable q counts as 1."""
    ranges = []
    for item in header.split(","):
        parts = [part.strip() for part in item.split(";")]
        media_type = parts[0].lower()
        if not media_type:
            continue
        params: dict[str, str] = {}
        for part in parts[1:]:
            name, _, value = part.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        try:
            quality = float(params.pop("q", "1"))
        except ValueError:
            quality = 1.0
        if quality > 0:
            ranges.append((media_type, params, quality))
    return ranges


def accepts(request: Request, media_type: str) -> bool:
    """Whether the request's ``Accept`` admits ``media_type`` (no header: anything). For bodies
    whose type is known only once the object is found (a stored document), after negotiation
    accepted the action's types in general."""
    if request.query_params.get(api_settings.URL_FORMAT_OVERRIDE or ""):
        # ``?format=`` chose the renderer and overrides Accept (DRF's negotiation).
        return negotiated_media_type(request, "") == media_type
    header = request.META.get("HTTP_ACCEPT", "")
    if not any(token.strip() for token in header.split(",")):
        return True
    return any(media_type_matches(media_type, accepted) for accepted, _, _ in media_ranges(header))
