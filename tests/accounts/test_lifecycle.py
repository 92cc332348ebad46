"""Issue 19, items 2 and 3: invitations, email verification, password reset and change.

Both tenants hold a clinician with the same id and email (tests/conftest.py), and the tests add
more colliding rows: every link is tried on the other tenant's host and must be refused there.
Emails are sent by the real Celery task, run in this process after the request's commit
(``deliver``), into pytest-django's ``mailoutbox``."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.links import (
    invitation_token_hash,
    reset_token_make,
    verification_token_make,
)
from accounts.models import Invitation, User
from accounts.roles import Role
from accounts.services import user_create, user_update
from audit.models import AuditEvent
from tenants.models import Domain, Plan, Tenant
from tests.accounts.conftest import link_of
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL, CLINICIAN_ID, TenantWorld, login

INVITATIONS = "/api/v1/users/invitations/"
ACCEPT = "/api/v1/auth/invitations/accept/"
VERIFY = "/api/v1/auth/verify/"
RESET = "/api/v1/auth/password/reset/"
RESET_CONFIRM = "/api/v1/auth/password/reset/confirm/"
CHANGE = "/api/v1/auth/password/change/"
TOKEN = "/api/v1/auth/token/"
ME = "/api/v1/auth/me/"
GOOD_PASSWORD = "Lifecycle-Pass-2026"
PENDING_ID = uuid.UUID("01900000-0000-7000-8000-0000000000aa")
PENDING_EMAIL = "pending@example.com"


def _error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


def _invite(world: TenantWorld, deliver: Any, email: str = "new@example.com") -> Any:
    with deliver(execute=True):
        return login(world).post(
            INVITATIONS, {"email": email, "role": "nurse", "full_name": "New Nurse"}, format="json"
        )


def _pending_user(world: TenantWorld, *, password: str | None = None) -> User:
    """An unverified account with the same id and email in whichever tenant asks."""
    with tenant_context(world.tenant):
        user = User(id=PENDING_ID, email=PENDING_EMAIL, role=Role.NURSE, is_active=False)
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user.save()
        return user


def _can_log_in(world: TenantWorld, email: str, password: str) -> bool:
    response = world.client().post(TOKEN, {"email": email, "password": password}, format="json")
    return response.status_code == 200


# --- email: tenant-aware, after commit ------------------------------------------------------------


def test_invitation_email_names_the_tenant_and_links_to_its_own_host(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    response = _invite(alpha, deliver)
    assert response.status_code == 201, response.content
    [message] = mailoutbox
    assert message.to == ["new@example.com"]
    assert "Alpha Org" in message.subject
    assert "Alpha Org" in message.body
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    assert "Alpha Org" in html
    host, path, query = link_of(message)
    assert (host, path) == (alpha.host, ACCEPT)
    assert f'href="https://{alpha.host}{ACCEPT}?token={query["token"]}"' in html
    # Only a keyed hash of the token is stored.
    with tenant_context(alpha.tenant):
        invitation = Invitation.objects.get(email="new@example.com")
        assert invitation.token_hash == invitation_token_hash(query["token"])
        assert query["token"] not in invitation.token_hash


def test_nothing_is_sent_when_the_transaction_rolls_back(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    with deliver(execute=True) as callbacks:
        response = login(alpha).post(
            INVITATIONS, {"email": CLINICIAN_EMAIL, "role": "nurse"}, format="json"
        )
    _error(response, 409, "email_taken")
    assert callbacks == []
    assert mailoutbox == []


def test_links_use_the_primary_domain_not_the_request_host(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    """A request arriving on another of the tenant's domains still gets links to the primary."""
    Domain.objects.create(domain="alpha-alias.verdant.test", tenant=alpha.tenant, is_primary=False)
    client = alpha.client()
    client.defaults["HTTP_HOST"] = "alpha-alias.verdant.test"
    with deliver(execute=True):
        response = client.post(RESET, {"email": CLINICIAN_EMAIL}, format="json")
    assert response.status_code == 202, response.content
    [message] = mailoutbox
    assert link_of(message)[0] == alpha.host


# --- invitations ------------------------------------------------------------------------------------


def test_invitee_sets_a_password_and_is_active_and_verified(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    _invite(alpha, deliver)
    _, _, query = link_of(mailoutbox[0])
    anonymous = alpha.client()
    checked = anonymous.get(ACCEPT, query)
    assert checked.status_code == 200, checked.content
    assert checked.json()["email"] == "new@example.com"
    assert checked.json()["tenant"] == "Alpha Org"

    weak = anonymous.post(ACCEPT, {**query, "password": "123"}, format="json")
    assert "password" in _error(weak, 400, "validation_error")["fields"]

    accepted = anonymous.post(ACCEPT, {**query, "password": GOOD_PASSWORD}, format="json")
    assert accepted.status_code == 201, accepted.content
    assert accepted.json()["is_active"]
    assert accepted.json()["email_verified_at"]
    assert _can_log_in(alpha, "new@example.com", GOOD_PASSWORD)
    with tenant_context(alpha.tenant):
        invitation = Invitation.objects.get(email="new@example.com")
        assert invitation.accepted_at is not None
        assert invitation.user is not None
        assert invitation.user.role == Role.NURSE
        assert AuditEvent.objects.filter(
            action="create", object_type="accounts.user", object_ids__contains=[invitation.user.pk]
        ).exists()
    # A used link is refused, on GET and POST.
    _error(anonymous.get(ACCEPT, query), 400, "link_invalid")
    _error(anonymous.post(ACCEPT, {**query, "password": GOOD_PASSWORD}, format="json"), 400,
           "link_invalid")  # fmt: skip


def test_an_invitation_from_one_tenant_is_refused_on_the_other(
    alpha: TenantWorld, beta: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    _invite(alpha, deliver, email="both@example.com")
    _invite(beta, deliver, email="both@example.com")
    _, _, alpha_query = link_of(mailoutbox[0])
    assert link_of(mailoutbox[1])[0] == beta.host
    refused = beta.client().post(ACCEPT, {**alpha_query, "password": GOOD_PASSWORD}, format="json")
    _error(refused, 400, "link_invalid")
    _error(beta.client().get(ACCEPT, alpha_query), 400, "link_invalid")
    with tenant_context(beta.tenant):
        assert not User.objects.filter(email="both@example.com").exists()
        assert Invitation.objects.get(email="both@example.com").accepted_at is None
    # Beta's admin cannot see or revoke alpha's invitation by id either.
    with tenant_context(alpha.tenant):
        alpha_id = Invitation.objects.get(email="both@example.com").pk
    assert login(beta).post(f"{INVITATIONS}{alpha_id}/revoke/").status_code == 404
    listed = login(beta).get(INVITATIONS).json()["results"]
    assert [row["id"] for row in listed] != []
    assert str(alpha_id) not in {r["id"] for r in listed}


def test_invitation_conflicts_and_roles(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    _error(_invite(alpha, deliver, email=CLINICIAN_EMAIL.upper()), 409, "email_taken")
    assert _invite(alpha, deliver).status_code == 201
    _error(_invite(alpha, deliver), 409, "invitation_pending")
    clinician = login(alpha, email=CLINICIAN_EMAIL)
    _error(clinician.post(INVITATIONS, {"email": "x@example.com", "role": "nurse"}, format="json"),
           403, "permission_denied")  # fmt: skip
    assert clinician.get(INVITATIONS).status_code == 403
    bad = login(alpha).post(INVITATIONS, {"email": "nope", "role": "wizard"}, format="json")
    assert set(_error(bad, 400, "validation_error")["fields"]) == {"email", "role"}
    assert alpha.client().post(INVITATIONS, {}, format="json").status_code == 401


def test_an_address_that_got_an_account_meanwhile_cannot_accept(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    _invite(alpha, deliver)
    _, _, query = link_of(mailoutbox[0])
    with tenant_context(alpha.tenant):
        user_create(email="new@example.com", role=Role.VIEWER, password=None, is_active=True)
    refused = alpha.client().post(ACCEPT, {**query, "password": GOOD_PASSWORD}, format="json")
    _error(refused, 409, "email_taken")


def test_resend_replaces_the_token_and_revoke_ends_it(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    invitation_id = _invite(alpha, deliver).json()["id"]
    _, _, first = link_of(mailoutbox[0])
    admin = login(alpha)
    with deliver(execute=True):
        resent = admin.post(f"{INVITATIONS}{invitation_id}/resend/")
    assert resent.status_code == 200, resent.content
    _, _, second = link_of(mailoutbox[1])
    assert first["token"] != second["token"]
    _error(alpha.client().get(ACCEPT, first), 400, "link_invalid")
    assert alpha.client().get(ACCEPT, second).status_code == 200

    revoked = admin.post(f"{INVITATIONS}{invitation_id}/revoke/")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"]
    _error(alpha.client().get(ACCEPT, second), 400, "link_invalid")
    _error(admin.post(f"{INVITATIONS}{invitation_id}/resend/"), 409, "invitation_closed")
    _error(admin.post(f"{INVITATIONS}{invitation_id}/revoke/"), 409, "invitation_closed")
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.filter(
            object_type="accounts.invitation", changed_fields__contains=["revoked_at"]
        ).exists()
    # Revoked, the address may be invited again.
    assert _invite(alpha, deliver).status_code == 201


def test_an_expired_invitation_is_refused(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    _invite(alpha, deliver)
    _, _, query = link_of(mailoutbox[0])
    with tenant_context(alpha.tenant):
        Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    _error(alpha.client().post(ACCEPT, {**query, "password": GOOD_PASSWORD}, format="json"), 400,
           "link_invalid")  # fmt: skip
    _error(alpha.client().get(ACCEPT, {"token": "not-a-token"}), 400, "link_invalid")


# --- verification -----------------------------------------------------------------------------------


def test_admin_created_user_is_inactive_until_the_link_is_followed(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    with deliver(execute=True):
        created = login(alpha).post(
            "/api/v1/users/", {"email": "fresh@example.com", "role": "viewer"}, format="json"
        )
    assert created.status_code == 201, created.content
    assert created.json()["is_active"] is False
    [message] = mailoutbox
    assert "Alpha Org" in message.subject
    host, path, query = link_of(message)
    assert (host, path) == (alpha.host, VERIFY)
    anonymous = alpha.client()
    assert anonymous.get(VERIFY, query).json()["password_required"] is True
    # No password yet: the link asks for one.
    missing = anonymous.post(VERIFY, query, format="json")
    assert "password" in _error(missing, 400, "validation_error")["fields"]
    weak = anonymous.post(VERIFY, {**query, "password": "fresh@example.com"}, format="json")
    assert "password" in _error(weak, 400, "validation_error")["fields"]
    done = anonymous.post(VERIFY, {**query, "password": GOOD_PASSWORD}, format="json")
    assert done.status_code == 200, done.content
    assert _can_log_in(alpha, "fresh@example.com", GOOD_PASSWORD)
    with tenant_context(alpha.tenant):
        user = User.objects.get(email="fresh@example.com")
        assert user.is_active
        assert user.email_verified_at
        assert user.deactivated_at is None
    # Works once.
    _error(anonymous.post(VERIFY, {**query, "password": GOOD_PASSWORD}, format="json"), 400,
           "link_invalid")  # fmt: skip


def test_admin_created_user_with_a_password_verifies_without_one(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    with deliver(execute=True):
        login(alpha).post(
            "/api/v1/users/",
            {"email": "withpw@example.com", "role": "viewer", "password": GOOD_PASSWORD},
            format="json",
        )
    _, _, query = link_of(mailoutbox[0])
    assert not _can_log_in(alpha, "withpw@example.com", GOOD_PASSWORD)  # not yet verified
    assert alpha.client().get(VERIFY, query).json()["password_required"] is False
    assert alpha.client().post(VERIFY, query, format="json").status_code == 200
    assert _can_log_in(alpha, "withpw@example.com", GOOD_PASSWORD)


def test_a_verification_link_of_one_tenant_is_refused_on_the_other(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    """Same user id, same email, both unverified: alpha's token does not verify beta's user."""
    alpha_user = _pending_user(alpha, password=GOOD_PASSWORD)
    _pending_user(beta, password=GOOD_PASSWORD)
    with tenant_context(alpha.tenant):
        token = verification_token_make(user=alpha_user)
    query = {"uid": str(PENDING_ID), "token": token}
    _error(beta.client().post(VERIFY, query, format="json"), 400, "link_invalid")
    _error(beta.client().get(VERIFY, query), 400, "link_invalid")
    with tenant_context(beta.tenant):
        assert not User.objects.get(pk=PENDING_ID).is_active
    # ...and a reset token is no verification token, even in its own tenant.
    with tenant_context(alpha.tenant):
        reset = reset_token_make(user=alpha_user)
    _error(alpha.client().post(VERIFY, {**query, "token": reset}, format="json"), 400,
           "link_invalid")  # fmt: skip
    assert alpha.client().post(VERIFY, query, format="json").status_code == 200


def test_an_expired_verification_link_is_refused(alpha: TenantWorld, settings: Any) -> None:
    user = _pending_user(alpha, password=GOOD_PASSWORD)
    with tenant_context(alpha.tenant):
        token = verification_token_make(user=user)
    settings.PASSWORD_RESET_TIMEOUT = 0
    time.sleep(1.1)
    query = {"uid": str(PENDING_ID), "token": token}
    _error(alpha.client().post(VERIFY, query, format="json"), 400, "link_invalid")
    _error(alpha.client().post(VERIFY, {"uid": "x", "token": token}, format="json"), 400,
           "link_invalid")  # fmt: skip


def test_no_link_reactivates_an_account_an_admin_deactivated(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    user = _pending_user(alpha, password=GOOD_PASSWORD)
    with tenant_context(alpha.tenant):
        verify = verification_token_make(user=user)
        reset = reset_token_make(user=user)
    deactivated = login(alpha).post(f"/api/v1/users/{PENDING_ID}/deactivate/")
    assert deactivated.status_code == 200
    assert deactivated.json()["deactivated_at"]
    uid = str(PENDING_ID)
    _error(alpha.client().post(VERIFY, {"uid": uid, "token": verify}, format="json"), 403,
           "account_deactivated")  # fmt: skip
    _error(alpha.client().post(RESET_CONFIRM, {"uid": uid, "token": reset,
                                               "password": "Other-Pass-2026"}, format="json"),
           403, "account_deactivated")  # fmt: skip
    with deliver(execute=True):
        asked = alpha.client().post(RESET, {"email": PENDING_EMAIL}, format="json")
    assert asked.status_code == 202
    assert mailoutbox == []
    with tenant_context(alpha.tenant):
        stored = User.objects.get(pk=PENDING_ID)
        assert not stored.is_active
        assert stored.email_verified_at is None
        assert stored.check_password(GOOD_PASSWORD)
        # Only an admin reactivates.
        assert user_update(user=stored, is_active=True).deactivated_at is None
    # The admin asks for a new verification link; the admin-active account needs none.
    _error(login(alpha).post(f"/api/v1/users/{PENDING_ID}/send-verification/"), 409,
           "already_verified")  # fmt: skip


def test_send_verification_emails_a_fresh_link(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    _pending_user(alpha)
    with deliver(execute=True):
        sent = login(alpha).post(f"/api/v1/users/{PENDING_ID}/send-verification/")
    assert sent.status_code == 202, sent.content
    assert link_of(mailoutbox[0])[2]["uid"] == str(PENDING_ID)
    assert (
        login(alpha, email=CLINICIAN_EMAIL)
        .post(f"/api/v1/users/{PENDING_ID}/send-verification/")
        .status_code
        == 403
    )


# --- password reset -----------------------------------------------------------------------------------


def test_reset_answers_the_same_whether_or_not_the_email_exists(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    with deliver(execute=True):
        known = alpha.client().post(RESET, {"email": CLINICIAN_EMAIL}, format="json")
        unknown = alpha.client().post(RESET, {"email": "ghost@example.com"}, format="json")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert [message.to for message in mailoutbox] == [[CLINICIAN_EMAIL]]
    _error(alpha.client().post(RESET, {}, format="json"), 400, "validation_error")


def test_reset_sets_a_new_password_once_and_ends_every_session(
    alpha: TenantWorld, beta: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    signed_in = login(alpha, email=CLINICIAN_EMAIL)
    with deliver(execute=True):
        alpha.client().post(RESET, {"email": CLINICIAN_EMAIL}, format="json")
    host, path, query = link_of(mailoutbox[0])
    assert (host, path) == (alpha.host, RESET_CONFIRM)
    anonymous = alpha.client()
    assert anonymous.get(RESET_CONFIRM, query).status_code == 200
    weak = anonymous.post(RESET_CONFIRM, {**query, "password": "password"}, format="json")
    assert "password" in _error(weak, 400, "validation_error")["fields"]
    # Beta's clinician has the same id and email: alpha's link does nothing there.
    _error(beta.client().post(RESET_CONFIRM, {**query, "password": GOOD_PASSWORD}, format="json"),
           400, "link_invalid")  # fmt: skip
    with deliver(execute=True):
        done = anonymous.post(RESET_CONFIRM, {**query, "password": GOOD_PASSWORD}, format="json")
    assert done.status_code == 200, done.content
    assert signed_in.get(ME).status_code == 401
    assert _can_log_in(alpha, CLINICIAN_EMAIL, GOOD_PASSWORD)
    assert _can_log_in(beta, CLINICIAN_EMAIL, beta.password)
    assert "password was changed" in mailoutbox[1].subject
    _error(anonymous.post(RESET_CONFIRM, {**query, "password": "Another-Pass-2026"},
                          format="json"), 400, "link_invalid")  # fmt: skip
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.filter(
            action="update",
            object_ids__contains=[CLINICIAN_ID],
            changed_fields__contains=["password"],
        ).exists()


def test_an_expired_reset_link_is_refused(alpha: TenantWorld, settings: Any) -> None:
    with tenant_context(alpha.tenant):
        token = reset_token_make(user=User.objects.get(pk=CLINICIAN_ID))
    settings.PASSWORD_RESET_TIMEOUT = 0
    time.sleep(1.1)
    query = {"uid": str(CLINICIAN_ID), "token": token, "password": GOOD_PASSWORD}
    _error(alpha.client().post(RESET_CONFIRM, query, format="json"), 400, "link_invalid")


def test_a_reset_of_an_unverified_account_verifies_it(alpha: TenantWorld) -> None:
    user = _pending_user(alpha)
    with tenant_context(alpha.tenant):
        token = reset_token_make(user=user)
    done = alpha.client().post(
        RESET_CONFIRM, {"uid": str(PENDING_ID), "token": token, "password": GOOD_PASSWORD},
        format="json",
    )  # fmt: skip
    assert done.status_code == 200, done.content
    assert _can_log_in(alpha, PENDING_EMAIL, GOOD_PASSWORD)


def test_reset_requests_are_throttled_per_tenant_ip_and_email(
    alpha: TenantWorld, beta: TenantWorld, settings: Any
) -> None:
    settings.PASSWORD_RESET_REQUESTS_PER_15_MINUTES = 2
    client = alpha.client()
    for _ in range(2):
        assert client.post(RESET, {"email": "x@example.com"}, format="json").status_code == 202
    refused = client.post(RESET, {"email": " X@example.com"}, format="json")
    _error(refused, 429, "throttled")
    assert int(refused["Retry-After"]) > 0
    # Another email from the same address, and the same email on the other tenant, go through.
    assert client.post(RESET, {"email": "y@example.com"}, format="json").status_code == 202
    assert beta.client().post(RESET, {"email": "x@example.com"}, format="json").status_code == 202


# --- password change ----------------------------------------------------------------------------------


def test_change_requires_the_old_password_and_ends_other_sessions(
    alpha: TenantWorld, beta: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    other_session = login(alpha, email=CLINICIAN_EMAIL)
    beta_session = login(beta, email=CLINICIAN_EMAIL)
    client = login(alpha, email=CLINICIAN_EMAIL)
    wrong = client.post(CHANGE, {"old_password": "nope", "new_password": GOOD_PASSWORD},
                        format="json")  # fmt: skip
    assert "old_password" in _error(wrong, 400, "validation_error")["fields"]
    weak = client.post(CHANGE, {"old_password": alpha.password, "new_password": "short"},
                       format="json")  # fmt: skip
    assert "new_password" in _error(weak, 400, "validation_error")["fields"]
    with deliver(execute=True):
        changed = client.post(
            CHANGE, {"old_password": alpha.password, "new_password": GOOD_PASSWORD}, format="json"
        )
    assert changed.status_code == 200, changed.content
    assert other_session.get(ME).status_code == 401
    fresh = alpha.client()
    fresh.credentials(HTTP_AUTHORIZATION=f"Bearer {changed.json()['access']}")
    assert fresh.get(ME).status_code == 200
    assert beta_session.get(ME).status_code == 200  # the colliding account is untouched
    assert [m.to for m in mailoutbox] == [[CLINICIAN_EMAIL]]
    with tenant_context(alpha.tenant):
        assert AuditEvent.objects.filter(
            action="update",
            object_ids__contains=[CLINICIAN_ID],
            changed_fields__contains=["password"],
        ).exists()
    assert alpha.client().post(CHANGE, {}, format="json").status_code == 401


def test_change_guesses_are_limited_like_logins(alpha: TenantWorld, settings: Any) -> None:
    settings.LOGIN_ATTEMPTS_PER_15_MINUTES = 2
    client = login(alpha, email=ADMIN_EMAIL)
    body = {"old_password": "wrong-guess", "new_password": GOOD_PASSWORD}
    for _ in range(1):
        _error(client.post(CHANGE, body, format="json"), 400, "validation_error")
    _error(client.post(CHANGE, body, format="json"), 429, "throttled")


@pytest.mark.parametrize("path", [ACCEPT, VERIFY, RESET_CONFIRM])
def test_link_endpoints_refuse_malformed_input(alpha: TenantWorld, path: str) -> None:
    _error(alpha.client().post(path, {}, format="json"), 400, "validation_error")
    _error(alpha.client().get(path), 400, "validation_error")


# --- the Django admin -------------------------------------------------------------------------------


def _admin_change(world: TenantWorld, user_id: uuid.UUID, **changes: Any) -> None:
    client = Client(HTTP_HOST=world.host)
    assert client.post(
        "/admin/login/?next=/admin/", {"username": ADMIN_EMAIL, "password": world.password}
    ).status_code == 302  # fmt: skip
    with tenant_context(world.tenant):
        user = User.objects.get(pk=user_id)
    form = {"email": user.email, "full_name": user.full_name, "role": user.role, **changes}
    if user.is_active and "is_active" not in changes:
        form["is_active"] = "on"
    response = client.post(f"/admin/accounts/user/{user_id}/change/", form)
    assert response.status_code == 302, response.content[:2000]


def test_the_admin_tells_an_unverified_account_from_a_deactivated_one(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    _pending_user(alpha, password=GOOD_PASSWORD)
    _pending_user(beta, password=GOOD_PASSWORD)
    # Renaming an unverified account leaves it waiting for verification, not deactivated.
    _admin_change(alpha, PENDING_ID, full_name="Renamed")
    with tenant_context(alpha.tenant):
        renamed = User.objects.get(pk=PENDING_ID)
        assert renamed.full_name == "Renamed"
        assert renamed.deactivated_at is None
    # Unticking "active" on an active account is a deactivation.
    _admin_change(alpha, CLINICIAN_ID, is_active="")
    with tenant_context(alpha.tenant):
        assert User.objects.get(pk=CLINICIAN_ID).deactivated_at is not None
    with tenant_context(beta.tenant):
        assert User.objects.get(pk=CLINICIAN_ID).deactivated_at is None
        assert User.objects.get(pk=PENDING_ID).full_name == ""


def test_accepting_needs_a_free_seat(
    alpha: TenantWorld, deliver: Any, mailoutbox: list[Any]
) -> None:
    _invite(alpha, deliver)
    _, _, query = link_of(mailoutbox[0])
    with tenant_context(alpha.tenant):
        full = Plan.objects.create(
            name=f"full-{uuid.uuid4().hex[:6]}",
            max_users=User.objects.filter(is_active=True).count(),
        )
    Tenant.objects.filter(pk=alpha.tenant.pk).update(plan=full)
    refused = alpha.client().post(ACCEPT, {**query, "password": GOOD_PASSWORD}, format="json")
    _error(refused, 409, "plan_limit_reached")
    with tenant_context(alpha.tenant):
        assert not User.objects.filter(email="new@example.com").exists()
    # The link still works once a seat is free.
    assert alpha.client().get(ACCEPT, query).status_code == 200
