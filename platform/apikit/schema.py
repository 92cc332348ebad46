"""OpenAPI generation: every operation documents the error envelope for the statuses it can
answer, the Idempotency-Key / If-Match / If-None-Match headers the base viewset honours, the
media types of its success body (``apikit.media.produces``), the filters it reads, and a summary
and description of its own (issue 17, item 5). Two postprocessing hooks finish the document for
strict validators and generated clients: ``strict_nullable_refs`` (nullable references valid
under OpenAPI 3.0.3) and ``anonymous_security`` (``security: []`` on anonymous operations)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import build_basic_type, get_doc
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from apikit import media

# Built with type(): a declared field named "fields" would clash with Serializer.fields for mypy.
ErrorSerializer: type[serializers.Serializer[Any]] = type(
    "ErrorSerializer",
    (serializers.Serializer,),
    {
        "status": serializers.IntegerField(),
        "code": serializers.CharField(
            help_text="Stable machine-readable code, e.g. validation_error."
        ),
        "detail": serializers.CharField(help_text="Human-readable explanation of what to do."),
        # A list of messages per field; a nested field (an object or a list of objects, e.g.
        # prescription items) keeps its shape: {"items": [{"dose": ["..."]}]}.
        "fields": serializers.DictField(
            child=serializers.JSONField(),
            required=False,
            help_text="Validation errors per field (validation_error only): a list of messages, "
            "or for nested fields an object / list of objects of the same shape.",
        ),
        "trace_id": serializers.CharField(required=False),
    },
)


class ErrorEnvelopeSerializer(serializers.Serializer[Any]):
    error = ErrorSerializer()


_DESCRIPTIONS = {
    400: "Invalid input (validation_error, parse_error, invalid_value) or invalid filter / "
    "ordering / cursor.",
    401: "Not authenticated, wrong credentials, or the token is invalid, expired or belongs to "
    "another tenant.",
    403: "The role, the signature of a callback, or the tenant's status (tenant_suspended) does "
    "not allow this.",
    404: "No such object, or it is outside your scope.",
    409: "Conflict: version_conflict, idempotency_key_in_use, or a domain conflict.",
    410: "This API version is retired.",
    412: "If-Match does not match the current version (precondition_failed).",
    413: "The request body is larger than this endpoint accepts.",
    415: "Unsupported Content-Type.",
    422: "Idempotency-Key reused with a different body (idempotency_key_reused).",
    429: "Throttled; retry after the Retry-After header's seconds.",
    500: "Server error; nothing was changed.",
    503: "The database is briefly unavailable (service_unavailable); retry after Retry-After.",
}


class EnvelopeAutoSchema(AutoSchema):
    def _is_scoped_viewset(self) -> bool:
        from apikit.viewsets import TenantScopedViewSet

        return isinstance(self.view, TenantScopedViewSet)

    def _error_statuses(self) -> list[int]:
        # Any route can answer 400 (a bad ?ordering= or ?cursor= is checked on detail and nested
        # routes too; a value the database refuses), 401 (a bad Authorization header, wrong
        # credentials), 403 (a suspended tenant, a bad webhook signature), 429, 500 and 503.
        statuses = {400, 401, 403, 429, 500, 503}
        if "{" in self.path or self.method == "DELETE":  # a singleton may have nothing to delete
            statuses.add(404)
        if self.method in {"POST", "PUT", "PATCH"}:
            statuses |= {413, 415}
        if self._is_scoped_viewset():
            if self.method in {"PUT", "PATCH", "DELETE"}:
                statuses |= {409, 412}
            if self.method == "POST":
                statuses |= {409, 422}
        return sorted(statuses)

    def get_operation(self, *args: Any, **kwargs: Any) -> Any:
        """drf-spectacular's operation, with the error envelope added for every status it may
        answer (always as ``application/json``, whatever the success body is), the success body's
        media types of an ``@produces`` action with its 406, and 304 where If-None-Match is
        honoured. Done on the finished operation, through public AutoSchema methods only (issue 22
        item 3): ``resolve_serializer`` registers the envelope component."""
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses: dict[str, Any] = operation["responses"]
        envelope = self.resolve_serializer(ErrorEnvelopeSerializer, "response").ref
        produced = media.declared(self.view)
        if produced is not None:
            responses["200"] = _produced_response(produced)
            responses.setdefault(
                "406",
                {
                    "content": {media.JSON: {"schema": envelope}},
                    "description": "Accept names none of this operation's media types "
                    "(not_acceptable).",
                },
            )
        for status in self._error_statuses():
            code = str(status)
            if code not in responses:
                # Errors are the JSON envelope whatever the success body is (apikit.media).
                responses[code] = {
                    "content": {media.JSON: {"schema": envelope}},
                    "description": _DESCRIPTIONS[status],
                }
        if self._answers_not_modified() and "304" not in responses:
            responses["304"] = {
                "description": "Not modified: If-None-Match matches the current ETag (no body)."
            }
        return operation

    def _answers_not_modified(self) -> bool:
        """The base viewset's retrieve honours If-None-Match (apikit.viewsets.RetrieveMixin)."""
        return (
            self.method == "GET"
            and self._is_scoped_viewset()
            and getattr(self.view, "action", None) == "retrieve"
        )

    def get_override_parameters(self) -> list[Any]:
        parameters = list(super().get_override_parameters())
        if not self._is_scoped_viewset():
            return parameters
        if self.method == "POST":
            parameters.append(
                OpenApiParameter(
                    "Idempotency-Key",
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    description="Retry-safe POST: the same key and body replay the first response "
                    "(Idempotent-Replayed: true) for 24 hours.",
                )
            )
        if self.method in {"PUT", "PATCH", "DELETE"}:
            parameters.append(
                OpenApiParameter(
                    "If-Match",
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    description="The ETag you read; a stale one answers 412.",
                )
            )
        if self.method == "GET" and "{" in self.path:
            parameters.append(
                OpenApiParameter(
                    "If-None-Match",
                    OpenApiTypes.STR,
                    OpenApiParameter.HEADER,
                    description="An ETag you hold; answers 304 when unchanged.",
                )
            )
        return parameters

    # --- filters: custom collection reads filter like the list does ---------------------------------

    def get_filter_backends(self) -> list[Any]:
        """drf-spectacular declares filters on list operations only; a collection-level GET
        action of the base viewset (an export, a summary) runs the same ``filter_queryset``, so
        it reads the same query parameters and must declare them."""
        detail = getattr(self.view, "detail", None)
        if self._is_scoped_viewset() and self.method == "GET" and detail is False:
            return list(getattr(self.view, "filter_backends", []))
        if self._is_scoped_viewset() and detail:
            # One object's route (its grants, say): the filters are not for it, even when its
            # answer is a list (which is what makes drf-spectacular add them).
            return []
        return list(super().get_filter_backends())

    # --- summaries and descriptions: one of its own per operation -----------------------------------

    def _handler(self) -> Any:
        action = getattr(self.view, "action", None) or self.method.lower()
        return getattr(self.view, action, None)

    def _model_names(self) -> tuple[str, str] | None:
        model = getattr(self.view, "model", None)
        if model is None:
            return None
        meta = model._meta  # Django's documented model metadata API
        return str(meta.verbose_name), str(meta.verbose_name_plural)

    def get_description(self) -> str:  # type: ignore[override]  # drf-spectacular's signature
        """The handler's own docstring, else a description written for the standard action on
        this model. Never the view class's docstring on a viewset: a class (or a mixin it
        inherits, e.g. ``ListMixin``) describes every operation at once. A plain APIView's class
        docstring is used, since there the class is the operation."""
        handler = self._handler()
        own = get_doc(handler) if handler is not None else ""
        if own:
            return str(own)
        action = getattr(self.view, "action", None)
        names = self._model_names()
        if action in _ACTION_DESCRIPTIONS and names is not None:
            singular, plural = names
            return _ACTION_DESCRIPTIONS[action].format(singular=singular, plural=plural)
        if action is None and len(self._http_methods()) == 1:
            view_doc = str(get_doc(type(self.view)))
            if view_doc:
                return view_doc
        # The summary written for the operation (``extend_schema(summary=...)``), if any.
        self._describing = True
        try:
            summary = self.get_summary()
        finally:
            self._describing = False
        return f"{summary}." if summary else ""

    def _http_methods(self) -> list[str]:
        return [m for m in self.view.allowed_methods if m not in {"OPTIONS", "HEAD"}]

    _describing = False

    def get_summary(self) -> str | None:
        if self._describing:
            return None
        action = getattr(self.view, "action", None)
        names = self._model_names()
        if action in _ACTION_SUMMARIES and names is not None:
            singular, plural = names
            return _ACTION_SUMMARIES[action].format(singular=singular, plural=plural)
        return _summary_of(self.get_description())


_SUMMARY_LENGTH = 80


def _summary_of(description: str) -> str | None:
    """The description's first sentence, without reST markup; a long one is cut before its
    first parenthesis or colon (the detail stays in the description)."""
    first = description.strip().split("\n\n", 1)[0].replace("\n", " ").replace("``", "")
    sentence = first.split(". ", 1)[0].rstrip(".")
    for mark in (" (", ": "):
        if len(sentence) > _SUMMARY_LENGTH and mark in sentence:
            sentence = sentence.split(mark, 1)[0]
    return sentence or None


_ACTION_SUMMARIES = {
    "list": "List {plural}",
    "retrieve": "Read a {singular}",
    "create": "Create a {singular}",
    "update": "Replace a {singular}",
    "partial_update": "Change a {singular}",
    "destroy": "Delete a {singular}",
}

_ACTION_DESCRIPTIONS = {
    "list": "The {plural} you may see, filtered, searched and ordered by the query parameters, "
    "one cursor page at a time (follow `next`).",
    "retrieve": "One {singular} by id, with its ETag; If-None-Match answers 304 while it is "
    "unchanged.",
    "create": "Create a {singular}; answers it with its ETag. Send an Idempotency-Key to retry "
    "safely.",
    "update": "Replace a {singular}'s writable fields; If-Match (or `version`) refuses a stale "
    "write.",
    "partial_update": "Change the {singular} fields you send; If-Match (or `version`) refuses a "
    "stale write.",
    "destroy": "Delete a {singular}: it is archived (kept for the audit trail, gone from lists "
    "and reads) unless the parameters say otherwise.",
}


def _produced_response(produced: media.Produces) -> dict[str, Any]:
    """The success response of an ``@produces`` action: each media type it negotiates, with
    ``OpenApiTypes.BINARY`` for opaque bodies (generated clients hand those over as files) and a
    free-form object for JSON ones."""
    schema: dict[str, Any] = (
        {"type": "object", "additionalProperties": {}}
        if produced.json_body
        else dict(build_basic_type(OpenApiTypes.BINARY) or {})
    )
    return {
        "content": {media_type: {"schema": dict(schema)} for media_type in produced.media_types},
        "description": produced.description,
    }


def strict_nullable_refs(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS: drf-spectacular writes a nullable reference as
    ``{allOf: [{$ref}], nullable: true}``; under OpenAPI 3.0.3 ``nullable`` only widens a
    schema that has a ``type``, so a strict validator refuses ``null`` there. Rewritten as
    ``{oneOf: [{$ref}, {type: object, nullable: true, enum: [null]}]}``, the 3.0.3 spelling of
    "this object or null" (docs/decisions.md)."""
    _rewrite(result)
    return result


def anonymous_security(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """POSTPROCESSING_HOOKS: an operation open to anonymous callers (login, token refresh, the
    email links) gets ``security: []`` (no requirement) instead of drf-spectacular's ``[{}]``.
    Both mean "no credentials needed", but generators read any non-empty list as "needs
    credentials" (openapi-python-client then asks for an AuthenticatedClient to log in)."""
    for item in result.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict) and operation.get("security") == [{}]:
                operation["security"] = []
    return result


def _rewrite(node: Any) -> None:
    if isinstance(node, dict):
        all_of = node.get("allOf")
        if (
            node.get("nullable") is True
            and isinstance(all_of, list)
            and len(all_of) == 1
            and isinstance(all_of[0], dict)
            and set(all_of[0]) == {"$ref"}
        ):
            del node["allOf"], node["nullable"]
            node["oneOf"] = [all_of[0], {"type": "object", "nullable": True, "enum": [None]}]
        for value in node.values():
            _rewrite(value)
    elif isinstance(node, list):
        for value in node:
            _rewrite(value)


def rest_api_only(endpoints: list[Any], **kwargs: Any) -> list[Any]:
    """PREPROCESSING_HOOKS: the document describes the REST API under ``/api/``. The FHIR R4 base
    (``/fhir/R4/``) is FHIR's own contract: its CapabilityStatement describes it, its errors are
    OperationOutcomes rather than the envelope every operation here documents, and FHIR clients
    are generated from FHIR's definitions, not from this document."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/")]
