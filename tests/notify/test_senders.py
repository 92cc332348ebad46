"""Per-tenant SMS senders (issue 19, item 5): alpha and beta each with their own number and
provider account on one fake Twilio server. Messages go out from each tenant's own sender;
webhooks are verified with the owning account's token and act on the owning tenant only; the
token is write-only, encrypted at rest, kept out of the audit trail, and survives key rotation."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import time
from io import StringIO
from typing import Any
from urllib.parse import urlencode

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from django.db import connection
from django_tenants.utils import tenant_context

from apikit.tenancy import activate_public
from audit.models import AuditEvent
from clinical.models import ReminderSettings
from clinical.reminders.services import reminders_dispatch
from notify.gateway import gateway_get
from notify.models import DeliveryReceipt, OptOut, SmsSender
from notify.public.models import SenderRoute
from notify.secrets import SecretUnreadableError
from notify.selectors import sender_config_get
from notify.services import sms_sender_save
from notify.signature import twilio_signature
from tenants.backup import sender_route_restore
from tests.clinical.conftest import Clinic
from tests.conftest import CLINICIAN_EMAIL, TenantWorld, login
from tests.notify.fake_twilio import FakeTwilio

pytestmark = pytest.mark.django_db

DEPLOY_ACCOUNT, DEPLOY_TOKEN, DEPLOY_NUMBER = "AC" + "0" * 32, "deploy-token", "+14155550100"
ACCOUNT = {"alpha": "AC" + "a" * 32, "beta": "AC" + "b" * 32}
TOKEN = {"alpha": "alpha-account-token", "beta": "beta-account-token"}
NUMBER = {"alpha": "+14155550111", "beta": "+14155550122"}
PATIENT = "+14155550177"
KEY_OLD, KEY_NEW, KEY_OTHER = (Fernet.generate_key().decode() for _ in range(3))
SENDER_URL = "/api/v1/notify/sender/"
INBOUND = "/api/v1/notify/twilio/inbound/"
STATUS = "/api/v1/notify/twilio/status/"


@pytest.fixture(autouse=True)
def _deployment(settings: Any) -> None:
    settings.TWILIO_ACCOUNT_SID = DEPLOY_ACCOUNT
    settings.TWILIO_AUTH_TOKEN = DEPLOY_TOKEN
    settings.TWILIO_FROM_NUMBER = DEPLOY_NUMBER
    settings.TWILIO_MESSAGING_SERVICE_SID = ""
    settings.NOTIFY_CALLBACK_SCHEME = "http"
    settings.NOTIFY_SECRET_KEYS = [KEY_OLD]


@pytest.fixture
def fake(settings: Any) -> Iterator[FakeTwilio]:
    server = FakeTwilio(
        account_sid=DEPLOY_ACCOUNT,
        auth_token=DEPLOY_TOKEN,
        accounts={ACCOUNT[slug]: TOKEN[slug] for slug in ACCOUNT},
    ).start()
    settings.NOTIFY_SMS_BACKEND = "twilio"
    settings.TWILIO_API_BASE = server.base_url
    yield server
    server.stop()


def own_sender(world: TenantWorld, *, account: bool = True) -> SmsSender:
    slug = world.tenant.slug
    with tenant_context(world.tenant):
        return sms_sender_save(
            tenant_id=world.tenant.pk,
            from_number=NUMBER[slug],
            messaging_service_sid="",
            account_sid=ACCOUNT[slug] if account else "",
            auth_token=TOKEN[slug] if account else None,
            expected_version=None,
            actor=None,
        ).sender


def webhook(
    world: TenantWorld, path: str, params: dict[str, str], *, token: str, host: str | None = None
) -> Any:
    host = host or world.host
    signature = twilio_signature(
        auth_token=token, url=f"http://{host}{path}", params=params.items()
    )
    return world.client().post(
        path,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_HOST=host,
        HTTP_X_TWILIO_SIGNATURE=signature,
    )


def stop_to(slug: str, *, sid: str = "SMin1", body: str = "STOP") -> dict[str, str]:
    return {
        "From": PATIENT,
        "To": NUMBER[slug],
        "Body": body,
        "MessageSid": sid,
        "AccountSid": ACCOUNT[slug],
    }


# --- sending -----------------------------------------------------------------------------------


def test_each_tenants_messages_go_out_from_its_own_number_and_account(
    alpha: TenantWorld, beta: TenantWorld, fake: FakeTwilio
) -> None:
    own_sender(alpha)
    own_sender(beta)
    for world in (alpha, beta):
        with tenant_context(world.tenant):
            gateway_get().send(
                to=PATIENT, body=f"hello from {world.tenant.slug}", status_callback=None
            )
    activate_public()
    sent = {(m.body, m.account, m.from_) for m in fake.messages}
    assert sent == {
        ("hello from alpha", ACCOUNT["alpha"], NUMBER["alpha"]),
        ("hello from beta", ACCOUNT["beta"], NUMBER["beta"]),
    }


def test_a_tenant_without_its_own_sender_uses_the_deployments(
    alpha: TenantWorld, beta: TenantWorld, fake: FakeTwilio
) -> None:
    own_sender(alpha)
    with tenant_context(beta.tenant):
        gateway_get().send(to=PATIENT, body="default", status_callback=None)
    assert [(m.account, m.from_) for m in fake.messages] == [(DEPLOY_ACCOUNT, DEPLOY_NUMBER)]


def test_own_number_on_the_deployments_account(alpha: TenantWorld, fake: FakeTwilio) -> None:
    own_sender(alpha, account=False)
    with tenant_context(alpha.tenant):
        gateway_get().send(to=PATIENT, body="shared account", status_callback=None)
    assert [(m.account, m.from_) for m in fake.messages] == [(DEPLOY_ACCOUNT, NUMBER["alpha"])]


# --- webhooks ----------------------------------------------------------------------------------


def test_stop_to_alphas_number_signed_by_alpha_opts_out_in_alpha_only(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    own_sender(alpha)
    own_sender(beta)
    response = webhook(alpha, INBOUND, stop_to("alpha"), token=TOKEN["alpha"])
    assert response.status_code == 200, response.content
    with tenant_context(alpha.tenant):
        assert list(OptOut.objects.values_list("phone", flat=True)) == [PATIENT]
    with tenant_context(beta.tenant):
        assert OptOut.objects.count() == 0


def test_status_callback_signed_by_alpha_for_alphas_number_updates_alpha_only(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    own_sender(alpha)
    own_sender(beta)
    params = {
        "MessageSid": "SMsame",
        "MessageStatus": "delivered",
        "From": NUMBER["alpha"],
        "To": PATIENT,
        "AccountSid": ACCOUNT["alpha"],
    }
    response = webhook(alpha, f"{STATUS}?ref=other:1", params, token=TOKEN["alpha"])
    assert response.status_code == 204, response.content
    with tenant_context(alpha.tenant):
        assert list(DeliveryReceipt.objects.values_list("provider_sid", "status")) == [
            ("SMsame", "delivered")
        ]
    with tenant_context(beta.tenant):
        assert DeliveryReceipt.objects.count() == 0


@pytest.mark.parametrize("path", [INBOUND, STATUS])
def test_alphas_number_signed_with_betas_or_the_deployments_token_is_refused(
    alpha: TenantWorld, beta: TenantWorld, path: str
) -> None:
    own_sender(alpha)
    own_sender(beta)
    params = (
        stop_to("alpha")
        if path == INBOUND
        else {"MessageSid": "SM1", "MessageStatus": "sent", "From": NUMBER["alpha"]}
    )
    for token in (TOKEN["beta"], DEPLOY_TOKEN):
        response = webhook(alpha, path, params, token=token)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "invalid_signature"
    with tenant_context(alpha.tenant):
        assert OptOut.objects.count() == 0
        assert DeliveryReceipt.objects.count() == 0


def test_alphas_number_on_betas_host_is_refused_even_with_alphas_token(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    own_sender(alpha)
    own_sender(beta)
    for token in (TOKEN["alpha"], TOKEN["beta"]):
        response = webhook(beta, INBOUND, stop_to("alpha"), token=token)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "invalid_signature"
    for world in (alpha, beta):
        with tenant_context(world.tenant):
            assert OptOut.objects.count() == 0


def test_another_account_for_alphas_number_is_refused(alpha: TenantWorld) -> None:
    own_sender(alpha)
    params = {**stop_to("alpha"), "AccountSid": ACCOUNT["beta"]}
    response = webhook(alpha, INBOUND, params, token=TOKEN["alpha"])
    assert response.status_code == 403
    with tenant_context(alpha.tenant):
        assert OptOut.objects.count() == 0


def test_deployment_number_stays_verified_with_the_deployment_token(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    own_sender(alpha)
    params = {"From": PATIENT, "To": DEPLOY_NUMBER, "Body": "STOP", "MessageSid": "SM9"}
    assert webhook(beta, INBOUND, params, token=TOKEN["alpha"]).status_code == 403
    assert webhook(beta, INBOUND, params, token=DEPLOY_TOKEN).status_code == 200
    with tenant_context(beta.tenant):
        assert OptOut.objects.count() == 1
    with tenant_context(alpha.tenant):
        assert OptOut.objects.count() == 0


# --- the API -----------------------------------------------------------------------------------


def put(client: Any, body: dict[str, Any], **headers: str) -> Any:
    return client.put(SENDER_URL, body, format="json", **headers)


def test_tenant_admin_sets_reads_and_deletes_its_sender_token_never_returned(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    client = login(alpha)
    first = client.get(SENDER_URL)
    assert first.status_code == 200
    assert first.json()["sender"] == "deployment"
    assert "ETag" not in first

    created = put(
        client,
        {
            "from_number": NUMBER["alpha"],
            "account_sid": ACCOUNT["alpha"],
            "auth_token": TOKEN["alpha"],
        },
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["sender"] == "own"
    assert (body["from_number"], body["account_sid"], body["auth_token_set"]) == (
        NUMBER["alpha"],
        ACCOUNT["alpha"],
        True,
    )
    assert "auth_token" not in body
    assert TOKEN["alpha"] not in created.content.decode()
    read = client.get(SENDER_URL)
    assert read["ETag"] == 'W/"1"'
    assert TOKEN["alpha"] not in read.content.decode()
    assert client.get(SENDER_URL, HTTP_IF_NONE_MATCH='W/"1"').status_code == 304

    with tenant_context(alpha.tenant):
        stored = SmsSender.objects.get()
        assert TOKEN["alpha"] not in stored.auth_token_encrypted
        assert (
            Fernet(KEY_OLD).decrypt(stored.auth_token_encrypted.encode()).decode() == TOKEN["alpha"]
        )
        events = list(AuditEvent.objects.filter(object_type="notify.smssender"))
        # A PUT is an update to the trail (apikit's rule), also when it creates the row.
        assert [(e.action, sorted(e.changed_fields)) for e in events] == [
            ("update", ["account_sid", "auth_token", "from_number"])
        ]
        assert events[0].object_ids == [stored.pk]
        rows = list(AuditEvent.objects.values_list(flat=False))
        assert TOKEN["alpha"] not in repr(rows)
    assert SenderRoute.objects.get(tenant=alpha.tenant).from_number == NUMBER["alpha"]

    # Changing the number only keeps the stored token (same account).
    changed = put(
        client,
        {"from_number": "+14155550199", "account_sid": ACCOUNT["alpha"]},
        HTTP_IF_MATCH='W/"1"',
    )
    assert changed.status_code == 200, changed.content
    assert changed.json()["auth_token_set"] is True
    with tenant_context(alpha.tenant):
        latest = AuditEvent.objects.filter(object_type="notify.smssender").order_by("-id").first()
        assert latest is not None
        assert (latest.action, latest.changed_fields) == ("update", ["from_number"])

    # Beta's view is untouched.
    assert login(beta).get(SENDER_URL).json()["sender"] == "deployment"

    gone = client.delete(SENDER_URL)
    assert gone.status_code == 204
    assert client.get(SENDER_URL).json()["sender"] == "deployment"
    assert not SenderRoute.objects.filter(tenant=alpha.tenant).exists()
    missing = client.delete(SENDER_URL)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def test_only_tenant_admins_touch_the_sender(alpha: TenantWorld) -> None:
    client = login(alpha, email=CLINICIAN_EMAIL)
    for response in (
        client.get(SENDER_URL),
        put(client, {"from_number": NUMBER["alpha"]}),
        client.delete(SENDER_URL),
    ):
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    assert alpha.client().get(SENDER_URL).status_code == 401
    with tenant_context(alpha.tenant):
        assert SmsSender.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"from_number": "4155550111"}, {"from_number"}),
        ({}, {"from_number"}),
        (
            {"from_number": NUMBER["alpha"], "messaging_service_sid": "MG" + "1" * 32},
            {"from_number"},
        ),
        ({"messaging_service_sid": "MGnope"}, {"messaging_service_sid"}),
        (
            {"from_number": NUMBER["alpha"], "account_sid": "ACshort", "auth_token": "x"},
            {"account_sid"},
        ),
        ({"from_number": NUMBER["alpha"], "auth_token": "x"}, {"auth_token"}),
        ({"from_number": NUMBER["alpha"], "account_sid": ACCOUNT["alpha"]}, {"auth_token"}),
    ],
)
def test_invalid_senders_are_400_with_field_errors(
    alpha: TenantWorld, body: dict[str, str], fields: set[str]
) -> None:
    response = put(login(alpha), body)
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]["fields"]) == fields
    with tenant_context(alpha.tenant):
        assert SmsSender.objects.count() == 0


def test_a_number_belongs_to_one_tenant_and_never_the_deployments(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    own_sender(alpha)
    client = login(beta)
    for number in (NUMBER["alpha"], DEPLOY_NUMBER):
        response = put(client, {"from_number": number})
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "sender_taken"
    with tenant_context(beta.tenant):
        assert SmsSender.objects.count() == 0
    assert list(SenderRoute.objects.values_list("tenant__slug", flat=True)) == ["alpha"]


def test_stale_version_is_refused(alpha: TenantWorld) -> None:
    own_sender(alpha)
    client = login(alpha)
    stale = put(client, {"from_number": "+14155550198"}, HTTP_IF_MATCH='W/"7"')
    assert stale.status_code == 412
    conflict = put(client, {"from_number": "+14155550198", "version": 7})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "version_conflict"


def test_storing_a_token_without_keys_is_a_clear_503(alpha: TenantWorld, settings: Any) -> None:
    settings.NOTIFY_SECRET_KEYS = []
    response = put(
        login(alpha),
        {"from_number": NUMBER["alpha"], "account_sid": ACCOUNT["alpha"], "auth_token": "t"},
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "secret_keys_missing"
    assert "NOTIFY_SECRET_KEYS" in response.json()["error"]["detail"]


def test_stored_tokens_without_keys_fail_the_database_check(
    alpha: TenantWorld, settings: Any
) -> None:
    own_sender(alpha)
    assert not [
        m
        for m in run_checks(include_deployment_checks=False, databases=["default"])
        if m.id == "notify.E001"
    ]
    settings.NOTIFY_SECRET_KEYS = []
    errors = [m for m in run_checks(databases=["default"]) if m.id == "notify.E001"]
    assert len(errors) == 1
    assert "NOTIFY_SECRET_KEYS" in errors[0].msg


# --- keys and rotation -------------------------------------------------------------------------


def rotate() -> str:
    out = StringIO()
    call_command("notify_secrets_rotate", stdout=out)
    return out.getvalue()


def test_rotation_re_encrypts_every_tenant_idempotently_and_the_old_key_can_go(
    alpha: TenantWorld, beta: TenantWorld, settings: Any
) -> None:
    own_sender(alpha)
    own_sender(beta)
    settings.NOTIFY_SECRET_KEYS = [KEY_NEW, KEY_OLD]
    assert "rotated 2, already current 0, unreadable 0" in rotate()
    assert "rotated 0, already current 2, unreadable 0" in rotate()
    settings.NOTIFY_SECRET_KEYS = [KEY_NEW]
    for world in (alpha, beta):
        with tenant_context(world.tenant):
            assert sender_config_get().auth_token == TOKEN[world.tenant.slug]
            assert (
                AuditEvent.objects.filter(
                    object_type="notify.smssender", changed_fields=["auth_token_encrypted"]
                ).count()
                == 1
            )
    # Still verifies webhooks after the old key is gone.
    assert webhook(alpha, INBOUND, stop_to("alpha"), token=TOKEN["alpha"]).status_code == 200


def test_a_value_under_an_unknown_key_is_a_clear_error_not_a_500(
    alpha: TenantWorld, beta: TenantWorld, settings: Any
) -> None:
    own_sender(alpha)
    settings.NOTIFY_SECRET_KEYS = [KEY_OTHER]
    with (
        tenant_context(alpha.tenant),
        pytest.raises(SecretUnreadableError, match="NOTIFY_SECRET_KEYS"),
    ):
        gateway_get()
    response = webhook(alpha, INBOUND, stop_to("alpha"), token=TOKEN["alpha"])
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "sender_secret_unreadable"
    # GET never decrypts: still answers, and says a token is set.
    assert login(alpha).get(SENDER_URL).json()["auth_token_set"] is True
    with pytest.raises(CommandError, match=r"1 stored secret\(s\) could not be opened"):
        rotate()
    # Beta (deployment sender) is unaffected.
    with tenant_context(beta.tenant):
        assert sender_config_get().account_sid == DEPLOY_ACCOUNT


def test_reminder_dispatch_sends_each_clinics_reminders_with_its_own_sender(
    clinic: Clinic, clinic_beta: Clinic, fake: FakeTwilio
) -> None:
    from tests.clinical.test_reminders import book

    for world_clinic in (clinic, clinic_beta):
        own_sender(world_clinic.world)
        with tenant_context(world_clinic.world.tenant):
            ReminderSettings.objects.update_or_create(
                singleton=1, defaults={"quiet_start": time(0, 0), "quiet_end": time(0, 0)}
            )
            book(world_clinic, hours_ahead=1)
            assert reminders_dispatch().sent == 1
    assert sorted((m.account, m.from_) for m in fake.messages) == [
        (ACCOUNT["alpha"], NUMBER["alpha"]),
        (ACCOUNT["beta"], NUMBER["beta"]),
    ]


def test_the_route_table_is_public_only_and_the_sender_per_tenant(alpha: TenantWorld) -> None:
    def tables(schema: str) -> set[str]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                [schema],
            )
            return {row[0] for row in cursor.fetchall()}

    public, tenant = tables("public"), tables(alpha.tenant.schema_name)
    assert "notify_public_senderroute" in public
    assert "notify_public_senderroute" not in tenant
    assert "notify_smssender" in tenant
    assert "notify_smssender" not in public


# --- restore of a tenant: the public route is rebuilt from the restored sender -----------------


def test_a_restored_tenant_takes_its_number_back_and_a_backup_without_sender_frees_it(
    alpha: TenantWorld, beta: TenantWorld, fake: FakeTwilio
) -> None:
    """The route table lives in the public schema, outside a tenant's backup: tenant_restore
    rebuilds alpha's route from the restored sender, and beta's route is never touched."""
    own_sender(alpha)
    own_sender(beta)
    SenderRoute.objects.filter(tenant_id=alpha.tenant.pk).delete()  # as after drop + restore

    assert sender_route_restore(alpha.tenant) == ""
    route = SenderRoute.objects.get(tenant_id=alpha.tenant.pk)
    assert (route.from_number, route.account_sid) == (NUMBER["alpha"], ACCOUNT["alpha"])
    assert SenderRoute.objects.get(tenant_id=beta.tenant.pk).from_number == NUMBER["beta"]
    response = webhook(
        alpha, "/api/v1/notify/twilio/inbound/", stop_to("alpha"), token=TOKEN["alpha"]
    )
    assert response.status_code == 200

    with tenant_context(alpha.tenant):
        SmsSender.objects.all().delete()  # a backup taken before alpha had a sender
    assert sender_route_restore(alpha.tenant) == ""
    assert not SenderRoute.objects.filter(tenant_id=alpha.tenant.pk).exists()
    assert SenderRoute.objects.filter(tenant_id=beta.tenant.pk).exists()


def test_a_number_claimed_meanwhile_stays_with_the_other_tenant_and_the_restore_says_so(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    own_sender(alpha, account=False)
    SenderRoute.objects.filter(tenant_id=alpha.tenant.pk).delete()
    with tenant_context(beta.tenant):  # beta took alpha's number while alpha was away
        sms_sender_save(
            tenant_id=beta.tenant.pk,
            from_number=NUMBER["alpha"],
            messaging_service_sid="",
            account_sid="",
            auth_token=None,
            expected_version=None,
            actor=None,
        )

    problem = sender_route_restore(alpha.tenant)

    assert problem
    assert not SenderRoute.objects.filter(tenant_id=alpha.tenant.pk).exists()
    assert SenderRoute.objects.get(tenant_id=beta.tenant.pk).from_number == NUMBER["alpha"]
