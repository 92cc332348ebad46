"""Provider webhooks: X-Twilio-Signature (HMAC-SHA1 over URL + sorted params) is required,
STOP / START update the tenant's opt-out ledger only, receipts move the reminder's state."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from clinical.models import ReminderMessage
from notify.models import ConsentEvent, DeliveryReceipt, OptOut
from notify.signature import twilio_signature
from tests.clinical.conftest import Clinic
from tests.conftest import TenantWorld

pytestmark = pytest.mark.django_db
TOKEN = "hook-token"
PHONE = "+14155550177"


@pytest.fixture(autouse=True)
def _token(settings: Any) -> None:
    settings.TWILIO_AUTH_TOKEN = TOKEN
    settings.NOTIFY_CALLBACK_SCHEME = "http"


def post(world: TenantWorld, path: str, params: dict[str, str], *, signature: str | None = None):
    url = f"http://{world.host}{path}"
    sign = twilio_signature(auth_token=TOKEN, url=url, params=params.items())
    return world.client().post(
        path,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=sign if signature is None else signature,
    )


def test_bad_or_missing_signature_is_403_and_changes_nothing(alpha: TenantWorld) -> None:
    for signature in ("", "bm90IGEgc2lnbmF0dXJl"):
        response = post(
            alpha,
            "/api/v1/notify/twilio/inbound/",
            {"From": PHONE, "Body": "STOP", "MessageSid": "SM1"},
            signature=signature,
        )
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "invalid_signature"
    # Signed for other parameters (tampered body): also refused.
    url = f"http://{alpha.host}/api/v1/notify/twilio/inbound/"
    sign = twilio_signature(auth_token=TOKEN, url=url, params=[("Body", "START"), ("From", PHONE)])
    tampered = post(
        alpha, "/api/v1/notify/twilio/inbound/", {"From": PHONE, "Body": "STOP"}, signature=sign
    )
    assert tampered.status_code == 403
    with tenant_context(alpha.tenant):
        assert OptOut.objects.count() == 0


def test_stop_and_start_update_only_this_tenants_ledger(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    stop = post(
        alpha,
        "/api/v1/notify/twilio/inbound/",
        {"From": PHONE, "Body": " stop ", "MessageSid": "SM1"},
    )
    assert stop.status_code == 200
    assert stop["Content-Type"].startswith("text/xml")
    with tenant_context(alpha.tenant):
        assert list(OptOut.objects.values_list("phone", "keyword")) == [(PHONE, "STOP")]
    with tenant_context(beta.tenant):
        assert OptOut.objects.count() == 0
    post(
        alpha,
        "/api/v1/notify/twilio/inbound/",
        {"From": PHONE, "Body": "START", "MessageSid": "SM2"},
    )
    post(
        alpha,
        "/api/v1/notify/twilio/inbound/",
        {"From": PHONE, "Body": "hello", "MessageSid": "SM3"},
    )
    with tenant_context(alpha.tenant):
        assert OptOut.objects.count() == 0
        assert list(ConsentEvent.objects.order_by("id").values_list("action", "keyword")) == [
            ("opt_out", "STOP"),
            ("opt_in", "START"),
        ]


def test_missing_fields_are_a_400_envelope(alpha: TenantWorld) -> None:
    response = post(alpha, "/api/v1/notify/twilio/inbound/", {"Body": "STOP"})
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"From", "MessageSid"}


def test_status_callback_marks_delivered_once(clinic: Clinic) -> None:
    from tests.clinical.test_reminders import book

    with tenant_context(clinic.world.tenant):
        appointment = book(clinic, hours_ahead=48)
        row = appointment.reminders.first()
        assert row is not None
        ReminderMessage.objects.filter(pk=row.pk).update(
            state="sending", claimed_at=timezone.now(), phone=PHONE, body="x"
        )
    path = f"/api/v1/notify/twilio/status/?ref=reminder:{row.pk}"
    for status in ("sent", "delivered", "delivered"):
        response = post(clinic.world, path, {"MessageSid": "SMabc", "MessageStatus": status})
        assert response.status_code == 204
    with tenant_context(clinic.world.tenant):
        row.refresh_from_db()
        # The create response was never recorded (worker died): the receipt still maps back.
        assert (row.state, row.provider_sid, row.provider_status) == (
            "delivered",
            "SMabc",
            "delivered",
        )
        assert DeliveryReceipt.objects.count() == 2
