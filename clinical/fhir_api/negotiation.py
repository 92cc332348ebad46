"""Media types of the FHIR base (FHIR R4 http.html#mime, issue 17 item 1).

Accepted: ``application/fhir+json`` (optionally ``;fhirVersion=4.0``), ``application/json``,
``*/*`` and ``application/*`` in ``Accept``; ``_format=json`` (or either JSON media type) in the
query, which wins over ``Accept`` as FHIR says. Anything else, and a ``fhirVersion`` other than
4.0 (R4), is a 406 OperationOutcome. Every answer is ``application/fhir+json; charset=utf-8``.

``FhirNegotiationMixin`` is what a FHIR view mixes in (before apikit's base viewset, or any DRF
``APIView``): the renderer, this negotiation and OperationOutcome errors, with no URL versioning
(the base is versioned by its path, ``/fhir/R4/``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.versioning import BaseVersioning

from apikit.json import JSONRenderer
from apikit.media import media_ranges
from clinical.fhir_api.outcome import FHIR_JSON, fhir_exception_handler

FHIR_VERSION = "4.0"
FORMAT_PARAM = "_format"
_JSON_TYPES = frozenset({FHIR_JSON, "application/json"})
_WILDCARDS = frozenset({"*/*", "application/*"})
_FORMAT_VALUES = frozenset({"json", *_JSON_TYPES})
NOT_ACCEPTABLE = (
    "This FHIR server speaks JSON only: accept application/fhir+json (fhirVersion 4.0) or "
    "application/json, or send _format=json."
)
WRONG_FHIR_VERSION = "This is a FHIR R4 server: fhirVersion {version!r} is not served (use 4.0)."


class FhirJSONRenderer(JSONRenderer):
    """``application/fhir+json; charset=utf-8`` with the bytes of apikit's one encoder."""

    media_type = FHIR_JSON
    format = "json"
    charset = "utf-8"


def _check_version(params: Mapping[str, str]) -> None:
    version = params.get("fhirversion")
    if version is not None and version != FHIR_VERSION:
        raise NotAcceptable(WRONG_FHIR_VERSION.format(version=version))


def acceptable(*, accept: str, format_value: str | None) -> None:
    """Raise 406 (``NotAcceptable``) unless FHIR JSON R4 may be answered."""
    if format_value is not None:
        ranges = media_ranges(format_value)
        value = format_value.strip().lower()
        if value not in _FORMAT_VALUES and not any(r[0] in _JSON_TYPES for r in ranges):
            raise NotAcceptable(NOT_ACCEPTABLE)
        for _media_type, params, _q in ranges:
            _check_version(params)
        return
    if not accept.strip():
        return  # no preference: any representation will do
    matches = [r for r in media_ranges(accept) if r[0] in _JSON_TYPES or r[0] in _WILDCARDS]
    if not matches:
        raise NotAcceptable(NOT_ACCEPTABLE)
    # The best range decides; a fhir+json range naming another version is refused.
    best = max(matches, key=lambda r: (r[2], r[0] == FHIR_JSON))
    if best[0] == FHIR_JSON:
        _check_version(best[1])


class FhirContentNegotiation(BaseContentNegotiation):
    """Always ``FhirJSONRenderer`` once ``acceptable`` passes; a 406 otherwise."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        acceptable(
            accept=request.headers.get("Accept", ""),
            format_value=request.query_params.get(FORMAT_PARAM),
        )
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class FhirNegotiationMixin:
    """Mixed into every FHIR view: renderer, negotiation, OperationOutcome errors, no versioning
    (``/fhir/R4/`` names the version). DRF's ``format`` override is off: FHIR's is ``_format``.
    The OpenAPI document leaves the whole base out (``apikit.schema.rest_api_only``)."""

    renderer_classes: Sequence[type[BaseRenderer]] = (FhirJSONRenderer,)
    content_negotiation_class: type[BaseContentNegotiation] = FhirContentNegotiation
    versioning_class: type[BaseVersioning] | None = None

    def get_exception_handler(self) -> Callable[[Exception, dict[str, Any]], Any]:
        return fhir_exception_handler
