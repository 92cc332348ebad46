"""Provider webhooks on the tenant's host: delivery receipts (status callbacks) and inbound
messages (STOP / START). No user is logged in; the X-Twilio-Signature header is the proof, and
a missing or wrong one is a 403 envelope before anything is read or written."""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.http import HttpResponse, QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from apikit.errors import APIError
from notify.services import delivery_receipt_record, inbound_message_handle
from notify.signature import twilio_signature_valid

SIGNATURE_INVALID = "The request signature (X-Twilio-Signature) is missing or does not match."
TENANT_REQUIRED = "Webhooks are served on an organisation's host only."
FIELD_REQUIRED = "This field is required."
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class _TwilioWebhook(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    # Signed by the provider and cheap to verify; per-IP anonymous limits would drop receipts.
    throttle_classes: list[Any] = []
    parser_classes = [FormParser]

    def verified_params(self, request: Request, *required: str) -> dict[str, str]:
        if getattr(request, "tenant", None) is None:
            raise APIError(status=404, code="not_found", detail=TENANT_REQUIRED)
        url = f"{settings.NOTIFY_CALLBACK_SCHEME}://{request.get_host()}{request.get_full_path()}"
        data = cast(QueryDict, request.data)
        pairs = [(key, value) for key in data for value in data.getlist(key)]
        if not twilio_signature_valid(
            auth_token=settings.TWILIO_AUTH_TOKEN,
            url=url,
            params=pairs,
            signature=request.headers.get("X-Twilio-Signature", ""),
        ):
            raise APIError(status=403, code="invalid_signature", detail=SIGNATURE_INVALID)
        params = {key: str(data.get(key, "")) for key in data}
        missing = {name: [FIELD_REQUIRED] for name in required if not params.get(name)}
        if missing:
            raise ValidationError(missing)
        return params


class StatusCallbackView(_TwilioWebhook):
    """Delivery receipt for a message we sent; ``?ref=`` is our reference, covered by the
    signature (the whole URL is signed)."""

    @extend_schema(request=OpenApiTypes.OBJECT, responses={204: None}, auth=[])
    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        params = self.verified_params(request, "MessageSid", "MessageStatus")
        delivery_receipt_record(
            provider_sid=params["MessageSid"],
            status=params["MessageStatus"].lower(),
            error_code=params.get("ErrorCode", ""),
            reference=request.query_params.get("ref", ""),
        )
        return HttpResponse(status=204)


class InboundMessageView(_TwilioWebhook):
    """A message a patient sent to our number: STOP / START keywords update the opt-out
    ledger. Answers empty TwiML (no auto-reply; the carrier sends its own STOP confirmation)."""

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.STR}, auth=[])
    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        params = self.verified_params(request, "From", "MessageSid")
        inbound_message_handle(
            from_phone=params["From"],
            body=params.get("Body", ""),
            provider_sid=params["MessageSid"],
        )
        return HttpResponse(EMPTY_TWIML, content_type="text/xml")
