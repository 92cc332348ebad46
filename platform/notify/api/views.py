"""Provider webhooks on the tenant's host: delivery receipts (status callbacks) and inbound
messages (STOP / START). No user is logged in; the X-Twilio-Signature header is the proof, and
a missing or wrong one is a 403 envelope before anything is read or written.

Which account's token verifies it follows from OUR number in the webhook (``To`` of an inbound
message, ``From`` of a status callback, or ``MessagingServiceSid``), looked up in the public
routing table (``notify.selectors.sender_owner_find``): a tenant's own number is verified with
that tenant's token and answers only on that tenant's host; any other number with the
deployment's (docs/sms-senders.md)."""

from __future__ import annotations

import logging
from typing import Any, cast

from django.conf import settings
from django.http import HttpResponse, QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.views import APIView

from apikit.errors import APIError
from apikit.media import renderer_for
from notify.secrets import SecretKeysError, SecretUnreadableError
from notify.selectors import (
    SenderConfig,
    sender_config_deployment,
    sender_config_get,
    sender_owner_find,
)
from notify.services import delivery_receipt_record, inbound_message_handle
from notify.signature import twilio_signature_valid

logger = logging.getLogger(__name__)

SIGNATURE_INVALID = "The request signature (X-Twilio-Signature) is missing or does not match."
TENANT_REQUIRED = "Webhooks are served on an organisation's host only."
FIELD_REQUIRED = "This field is required."
SENDER_UNREADABLE = (
    "This organisation's SMS sender credentials cannot be read on the server; the operators "
    "have been told."
)
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


class _TwilioWebhook(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    # Signed by the provider and cheap to verify; per-IP anonymous limits would drop receipts.
    throttle_classes: list[Any] = []
    parser_classes = [FormParser]

    # The webhook's field holding OUR number (the patient's is the other one).
    our_number_field: str

    def verified_params(self, request: Request, *required: str) -> dict[str, str]:
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            raise APIError(status=404, code="not_found", detail=TENANT_REQUIRED)
        url = f"{settings.NOTIFY_CALLBACK_SCHEME}://{request.get_host()}{request.get_full_path()}"
        data = cast(QueryDict, request.data)
        pairs = [(key, value) for key in data for value in data.getlist(key)]
        params = {key: str(data.get(key, "")) for key in data}
        sender = self.sender_for(tenant_id=tenant.pk, params=params)
        if not twilio_signature_valid(
            auth_token=sender.auth_token,
            url=url,
            params=pairs,
            signature=request.headers.get("X-Twilio-Signature", ""),
        ):
            raise APIError(status=403, code="invalid_signature", detail=SIGNATURE_INVALID)
        missing = {name: [FIELD_REQUIRED] for name in required if not params.get(name)}
        if missing:
            raise ValidationError(missing)
        return params

    def sender_for(self, *, tenant_id: int, params: dict[str, str]) -> SenderConfig:
        """The sender whose token must have signed this webhook. The (unverified) number only
        picks the key: a forged one fails the signature check with that key. Another tenant's
        number, or another account, answers exactly like a bad signature (no oracle telling
        which organisation owns a number)."""
        owner = sender_owner_find(
            number=params.get(self.our_number_field, ""),
            messaging_service_sid=params.get("MessagingServiceSid", ""),
        )
        if owner.conflict or (owner.tenant_id is not None and owner.tenant_id != tenant_id):
            raise APIError(status=403, code="invalid_signature", detail=SIGNATURE_INVALID)
        if owner.tenant_id is None:
            sender = sender_config_deployment()
        else:
            try:
                sender = sender_config_get()
            except (SecretUnreadableError, SecretKeysError) as error:
                logger.error("sms sender secret unreadable", extra={"reason": str(error)})
                raise APIError(
                    status=503, code="sender_secret_unreadable", detail=SENDER_UNREADABLE
                ) from None
        account = params.get("AccountSid", "")
        if account and account != sender.account_sid:
            raise APIError(status=403, code="invalid_signature", detail=SIGNATURE_INVALID)
        return sender


class StatusCallbackView(_TwilioWebhook):
    """Delivery receipt for a message we sent; ``?ref=`` is our reference, covered by the
    signature (the whole URL is signed)."""

    our_number_field = "From"

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={204: None},
        auth=[],
        parameters=[
            OpenApiParameter(
                "ref",
                OpenApiTypes.STR,
                description="Our reference for the message, as we put it in the callback URL.",
            )
        ],
    )
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

    our_number_field = "To"
    # The answer is TwiML: negotiated as XML (apikit.media; errors stay the JSON envelope).
    renderer_classes = [renderer_for("text/xml"), renderer_for("application/xml")]

    @extend_schema(request=OpenApiTypes.OBJECT, responses={200: OpenApiTypes.BINARY}, auth=[])
    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        params = self.verified_params(request, "From", "MessageSid")
        inbound_message_handle(
            from_phone=params["From"],
            body=params.get("Body", ""),
            provider_sid=params["MessageSid"],
        )
        return HttpResponse(EMPTY_TWIML, content_type="text/xml")
