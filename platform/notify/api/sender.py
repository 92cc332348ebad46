"""notify/sender/: the organisation's own SMS sender, for tenant_admin. GET shows it (never the
auth token: ``auth_token_set`` only), PUT creates or replaces it, DELETE goes back to the
deployment's sender. Every write is audited with field names only (``auth_token`` when a token
was sent), never values."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import HttpResponse, HttpResponseNotModified
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from apikit import conditional
from apikit.errors import APIError
from apikit.viewsets import TenantScopedViewSet
from notify import selectors, services
from notify.api.serializers import SenderInputSerializer, SenderOutputSerializer
from notify.models import SmsSender

NO_OWN_SENDER = "This organisation has no sender of its own; it uses the deployment's."


def _representation(sender: SmsSender | None) -> dict[str, Any]:
    if sender is None:
        return {
            "sender": "deployment",
            "id": None,
            "from_number": "",
            "messaging_service_sid": "",
            "account_sid": "",
            "auth_token_set": False,
            "version": None,
            "updated_at": None,
        }
    return {
        "sender": "own",
        "id": sender.pk,
        "from_number": sender.from_number,
        "messaging_service_sid": sender.messaging_service_sid,
        "account_sid": sender.account_sid,
        "auth_token_set": bool(sender.auth_token_encrypted),
        "version": sender.version,
        "updated_at": sender.updated_at,
    }


class SenderViewSet(TenantScopedViewSet):
    model = SmsSender
    # The role matrix (apikit.policy) gives these to tenant_admin only; the Django admin checks
    # the same view permission.
    required_permissions = {
        "retrieve": "notify.view_smssender",
        "update": "notify.change_smssender",
        "destroy": "notify.delete_smssender",
    }
    lookup_field = "slot"

    def scoped_queryset(self) -> QuerySet[SmsSender]:
        return SmsSender.objects.all()

    def _respond(self, sender: SmsSender | None, *, status: int = 200) -> Response:
        data = SenderOutputSerializer(_representation(sender)).data
        headers = {"ETag": conditional.etag_for(sender)} if sender is not None else {}
        return Response(data, status=status, headers=headers)

    @extend_schema(responses=SenderOutputSerializer)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        sender = selectors.sms_sender_get()
        if sender is not None and conditional.is_not_modified(request, sender):
            not_modified = HttpResponseNotModified()
            not_modified["ETag"] = conditional.etag_for(sender)
            return not_modified
        return self._respond(sender)

    @extend_schema(request=SenderInputSerializer, responses=SenderOutputSerializer)
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        body = SenderInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        existing = selectors.sms_sender_get()
        saved = services.sms_sender_save(
            tenant_id=request.tenant.pk,  # type: ignore[attr-defined]
            from_number=body.validated_data["from_number"].strip(),
            messaging_service_sid=body.validated_data["messaging_service_sid"].strip(),
            account_sid=body.validated_data["account_sid"].strip(),
            auth_token=body.validated_data["auth_token"],
            expected_version=self.expected_version(existing) if existing is not None else None,
            actor=request.user,
        )
        self.audit_changed_fields = saved.changed_fields
        return self._respond(saved.sender, status=201 if saved.created else 200)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        existing = selectors.sms_sender_get()
        if existing is None:
            raise APIError(status=404, code="not_found", detail=NO_OWN_SENDER)
        services.sms_sender_delete(
            tenant_id=request.tenant.pk,  # type: ignore[attr-defined]
            expected_version=self.expected_version(existing),
        )
        self.audit_changed_fields = [
            "from_number",
            "messaging_service_sid",
            "account_sid",
            *(["auth_token"] if existing.auth_token_encrypted else []),
        ]
        return Response(status=204)
