"""Every API route, read from the URL conf (never hand-listed), with what the adversarial suites
need to call it: concrete paths for colliding and B-only ids, and the HTTP methods it answers.

A route whose name is not in ``ROUTE_KINDS``, or whose path parameter is not in
``PARAM_MODELS``, fails ``test_every_route_is_classified``: a new endpoint cannot ship without
someone deciding what an attack on it looks like.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

from tests.security.world import B_ONLY, SHARED

API_URLCONF = "settings.urls_api"
API_PREFIX = "/api/v1/"

# What each route is. Kinds:
#   public     - answers anyone on any host and holds no tenant data (schema, docs)
#   auth       - takes credentials or a refresh token instead of an access token
#   collection - a list / create / search / export over the tenant's rows
#   object     - addresses one row (or a row's action) by id
#   sync       - offline sync (pull / push / devices)
#   webhook    - called by a provider, anonymous but signed (SMS gateway callbacks)
#   other      - anything else tenant-scoped and authenticated
ROUTE_KINDS: dict[str, str] = {
    "schema": "public",
    "docs": "public",
    "auth-token": "auth",
    "auth-token-refresh": "auth",
    "auth-logout": "auth",
    "auth-me": "other",
    "user-list": "collection",
    "user-detail": "object",
    "user-deactivate": "object",
    "user-set-password": "object",
    "user-send-verification": "object",
    "invitation-list": "collection",
    "invitation-detail": "object",
    "invitation-resend": "object",
    "invitation-revoke": "object",
    # Anonymous, acting on an emailed link's token (refused on any other tenant's host).
    "auth-invitation-accept": "auth",
    "auth-verify": "auth",
    "auth-password-reset": "auth",
    "auth-password-reset-confirm": "auth",
    "auth-password-change": "other",
    "audit-event-list": "collection",
    "audit-event-detail": "object",
    "clinical-fhir-export": "collection",
    "clinical-patient-documents": "object",
    "clinical-patient-document": "object",
    "clinical-patient-document-download": "object",
    "clinical-facility-list": "collection",
    "clinical-facility-detail": "object",
    "clinical-facility-access": "object",
    "clinical-patient-list": "collection",
    "clinical-patient-detail": "object",
    "clinical-patient-fhir": "object",
    "clinical-appointment-list": "collection",
    "clinical-appointment-summary": "collection",
    "clinical-appointment-detail": "object",
    "clinical-appointment-cancel": "object",
    "clinical-appointment-check-in": "object",
    "clinical-appointment-complete": "object",
    "clinical-appointment-fhir": "object",
    "clinical-appointment-no-show": "object",
    "clinical-prescription-list": "collection",
    "clinical-prescription-detail": "object",
    "farms-field-list": "collection",
    "farms-field-geojson": "collection",
    "farms-field-detail": "object",
    "farms-crop-list": "collection",
    "farms-crop-detail": "object",
    "farms-planting-list": "collection",
    "farms-planting-detail": "object",
    "farms-planting-summary": "object",
    "farms-observation-list": "collection",
    "farms-observation-export": "collection",
    "farms-observation-detail": "object",
    "farms-harvest-list": "collection",
    "farms-harvest-detail": "object",
    "farms-farm-list": "collection",
    "farms-farm-detail": "object",
    "farms-farm-access": "object",
    "farms-farm-access-revoke": "object",
    "farms-farm-summary": "object",
    "clinical-reminder-list": "collection",
    "clinical-reminder-detail": "object",
    "clinical-reminder-settings": "other",
    "clinical-reminder-settings-preview": "other",
    "notify-sender": "other",
    "notify-twilio-status": "webhook",
    "notify-twilio-inbound": "webhook",
    "sync-device-list": "collection",
    "sync-device-detail": "object",
    "sync-device-revoke": "object",
    "sync-pull": "sync",
    "sync-push": "sync",
}

# Path parameter -> the model whose seeded ids fill it. ``pk`` means "the view's own model".
PARAM_MODELS: dict[str, str] = {
    "pk": "<view model>",
    "patient_pk": "clinical.patient",
    "user_id": "accounts.user",
}

_REGEX_GROUP = re.compile(r"\(\?P<(?P<name>\w+)>[^)]*\)")
_CONVERTER = re.compile(r"<(?:(?P<converter>\w+):)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str
    params: tuple[str, ...]
    methods: tuple[str, ...]
    view_model: str  # "app_label.model" of the view's model, "" when it has none
    callback: Any

    @property
    def kind(self) -> str:
        return ROUTE_KINDS.get(self.name, "")

    def path(self, ids: dict[str, uuid.UUID]) -> str:
        """The concrete URL with each parameter taken from ``ids`` (by model label)."""
        values = {param: str(self.id_for(param, ids)) for param in self.params}

        def regex_group(match: re.Match[str]) -> str:
            return values[match.group("name")]

        def converter(match: re.Match[str]) -> str:
            return values.get(match.group("name"), "v1")

        body = self.pattern.replace("^", "").replace("$", "").replace("\\.", ".")
        body = _REGEX_GROUP.sub(regex_group, body)
        body = _CONVERTER.sub(converter, body)
        return API_PREFIX + body

    def model_for(self, param: str) -> str:
        model = PARAM_MODELS.get(param, "")
        return self.view_model if model == "<view model>" else model

    def id_for(self, param: str, ids: dict[str, uuid.UUID]) -> uuid.UUID:
        # Ids of models the world does not seed: a fresh UUID (found nowhere).
        return ids.get(self.model_for(param), uuid.UUID(int=0xDEAD))


def _walk(patterns: list[Any], prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry


def _methods(callback: Any) -> tuple[str, ...]:
    actions = getattr(callback, "actions", None)
    if actions:
        return tuple(sorted(method.upper() for method in actions))
    view_class = getattr(callback, "view_class", None) or getattr(callback, "cls", None)
    names = getattr(view_class, "http_method_names", ())
    return tuple(
        sorted(
            name.upper()
            for name in names
            if name not in {"options", "head", "trace"} and hasattr(view_class, name)
        )
    )


def _view_model(callback: Any) -> str:
    view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
    model = getattr(view_class, "model", None)
    if model is None:
        queryset = getattr(view_class, "queryset", None)
        model = getattr(queryset, "model", None)
    return model._meta.label_lower if model is not None else ""


def api_routes() -> list[Route]:
    """Every route under /api/<version>/, straight from the URL conf."""
    routes = []
    for pattern, entry in _walk(get_resolver(API_URLCONF).url_patterns):
        params = tuple(
            [m.group("name") for m in _REGEX_GROUP.finditer(pattern)]
            + [m.group("name") for m in _CONVERTER.finditer(pattern)]
        )
        routes.append(
            Route(
                name=entry.name or pattern,
                pattern=pattern,
                params=params,
                methods=_methods(entry.callback),
                view_model=_view_model(entry.callback),
                callback=entry.callback,
            )
        )
    return routes


SHARED_IDS = {label: pk for label, pk in SHARED.items() if "#" not in label}
B_ONLY_IDS = dict(B_ONLY)
