"""OpenAPI generation: every operation documents the error envelope for the statuses it can
answer, and the Idempotency-Key / If-Match / If-None-Match headers the base viewset honours."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

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
        answer (and 304 where If-None-Match is honoured). Done on the finished operation, through
        public AutoSchema methods only (issue 22 item 3): ``resolve_serializer`` registers the
        envelope component, ``map_renderers`` gives the media types the view answers in."""
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses: dict[str, Any] = operation["responses"]
        envelope = self.resolve_serializer(ErrorEnvelopeSerializer, "response").ref
        media_types = self.map_renderers("media_type")
        for status in self._error_statuses():
            code = str(status)
            if code not in responses:
                responses[code] = {
                    "content": {media_type: {"schema": envelope} for media_type in media_types},
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
