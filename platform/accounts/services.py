"""Writes for accounts: users, roles, logins."""

import uuid
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_tenants.utils import get_public_schema_name
from rest_framework.exceptions import Throttled, ValidationError

from accounts.emails import EmailKind, account_email_queue, tenant_link
from accounts.links import (
    invitation_token_hash,
    invitation_token_new,
    reset_token_check,
    reset_token_make,
    verification_token_check,
    verification_token_make,
)
from accounts.models import Invitation, User
from accounts.roles import Role
from accounts.seats import user_seat_reserve
from accounts.tokens import TokenPair, refresh_tokens_revoke_all, token_pair_issue
from apikit.access_events import user_access_changed
from apikit.concurrency import version_conflict
from apikit.errors import APIError
from apikit.login_guard import (
    device_token_issue,
    login_attempt,
    login_attempt_check,
    login_failure_record,
    login_success_record,
)
from apikit.policy import is_staff_role
from apikit.request_context import RequestContext
from apikit.tenancy import current_schema_name
from audit.models import AuditEvent
from audit.services import audit_event_record, audit_object_type

INVALID_CREDENTIALS_DETAIL = "Email or password is incorrect."
ACCOUNT_INACTIVE_DETAIL = (
    "This account is not active. Ask your organisation's admin to activate it."
)
EMAIL_TAKEN_DETAIL = "A user with this email already exists."
LAST_ADMIN_DETAIL = "This is the last active tenant admin; make another user tenant_admin first."


def normalize_email(email: str) -> str:
    return email.strip().lower()


def _check_password_strength(*, password: str, user: User, field: str = "password") -> None:
    """Django's AUTH_PASSWORD_VALIDATORS, as field errors under ``field`` in the envelope."""
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationError({field: list(exc.messages)}) from None


@transaction.atomic
def user_create(
    *,
    email: str,
    role: str,
    password: str | None,
    is_active: bool = False,
    full_name: str = "",
    validate_strength: bool = True,
) -> User:
    """Create a staff account in the current tenant. Without a password the account cannot log
    in until one is set; ``is_active`` defaults to False (unverified). An active account takes
    one of the plan's seats (409 ``plan_limit_reached`` when none is left: accounts.seats)."""
    email = normalize_email(email)
    if User.objects.filter(email=email).exists():
        raise ValidationError({"email": [EMAIL_TAKEN_DETAIL]})
    if is_active:
        user_seat_reserve()
    user = User(
        email=email,
        role=role,
        full_name=full_name,
        is_active=is_active,
        is_staff=is_staff_role(role),
    )
    if password is None:
        user.set_unusable_password()
    else:
        if validate_strength:
            _check_password_strength(password=password, user=user)
        user.set_password(password)
    user.save()
    if not is_active and current_schema_name() != get_public_schema_name():
        # Inactive until the address is verified: the link activates it (and asks for a
        # password when the admin set none).
        user_verification_send(user=user)
    return user


def _other_active_admins_exist(*, user: User) -> bool:
    return User.objects.filter(role=Role.TENANT_ADMIN, is_active=True).exclude(pk=user.pk).exists()


def last_admin_check(*, user: User, role: str | None, is_active: bool | None) -> None:
    """409 ``last_tenant_admin`` when the change would leave the tenant without an active
    tenant admin (the rule of ``user_update``; the admin's change form asks it before saving)."""
    losing_admin = (
        user.role == Role.TENANT_ADMIN
        and user.is_active
        and ((role is not None and role != Role.TENANT_ADMIN) or is_active is False)
    )
    if not losing_admin:
        return
    if transaction.get_connection().in_atomic_block:
        # Serialise concurrent demotions of the last two admins.
        list(User.objects.select_for_update().filter(role=Role.TENANT_ADMIN, is_active=True))
    if not _other_active_admins_exist(user=user):
        raise APIError(status=409, code="last_tenant_admin", detail=LAST_ADMIN_DETAIL)


@transaction.atomic
def user_update(
    *,
    user: User,
    role: str | None = None,
    full_name: str | None = None,
    is_active: bool | None = None,
    expected_version: int | None = None,
) -> User:
    """Change a user's role, name or active flag. The last active tenant admin cannot be
    demoted or deactivated, so a tenant can never lock itself out. Reactivating takes a seat
    (409 ``plan_limit_reached`` when the plan has none left).

    ``is_active=False`` is a deactivation (``deactivated_at`` is set, and no emailed link will
    activate the account again); ``is_active=True`` activates, verified or not, and clears it.
    With ``expected_version`` (the API's If-Match / body ``version``), a user changed since that
    version answers 409 ``version_conflict``: the check runs under the row lock."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if expected_version is not None and expected_version != user.version:
        raise version_conflict(sent=expected_version, current=user.version)
    if is_active and not user.is_active:
        user_seat_reserve()
    last_admin_check(user=user, role=role, is_active=is_active)
    update_fields = ["updated_at", "version"]
    user.version = F("version") + 1
    if role is not None:
        user.role = role
        user.is_staff = is_staff_role(role)
        update_fields += ["role", "is_staff"]
    if full_name is not None:
        user.full_name = full_name
        update_fields.append("full_name")
    if is_active is not None:
        user.is_active = is_active
        user.deactivated_at = (user.deactivated_at or timezone.now()) if not is_active else None
        update_fields += ["is_active", "deactivated_at"]
    user.save(update_fields=update_fields)
    user.refresh_from_db(fields=["version"])
    if is_active is False:
        refresh_tokens_revoke_all(user=user)
    if role is not None or is_active is not None:
        # Open WebSockets re-check this user once the change commits (issue 18, item 6).
        user_access_changed(user_id=user.pk)
    return user


def user_deactivate(*, user: User) -> User:
    """Deactivate and revoke every refresh token; access tokens stop working at once because
    authentication re-reads ``is_active``."""
    return user_update(user=user, is_active=False)


@transaction.atomic
def user_password_set(*, user: User, password: str) -> User:
    """An admin sets a user's password: every session and token the user holds ends (see
    ``user_sessions_end``)."""
    _check_password_strength(password=password, user=user)
    user.set_password(password)
    user.version = F("version") + 1
    user.save(update_fields=["password", "updated_at", "version"])
    user.refresh_from_db(fields=["version"])
    return user


def user_sessions_end(*, user: User) -> None:
    """End everything issued to ``user`` before a credentials change; ``User.save()`` calls it,
    in the transaction that bumped ``credentials_version``, for every stored password change.

    Refresh tokens are blacklisted; access and refresh tokens carrying an older ``cv`` are refused
    anyway, so one issued while this runs is no way back in: authentication reads the user on every
    request. Django sessions need nothing: their auth hash covers the password.
    """
    if current_schema_name() != get_public_schema_name():
        # Platform operators (public schema) hold no JWTs, and public has no blacklist table.
        refresh_tokens_revoke_all(user=user)
        # Open WebSockets of this user end (4403) once the change commits (issue 18, item 6).
        user_access_changed(user_id=user.pk)


@dataclass(frozen=True)
class LoginResult:
    pair: TokenPair
    # The login's new device token (apikit.login_guard): sent back with the next login, it
    # counts that login apart from anyone else's guesses at the same account.
    device_token: str


def auth_login(
    *,
    email: str,
    password: str,
    device: Any = None,
    device_token: str | None = None,
    context: RequestContext | None = None,
) -> LoginResult:
    """Check credentials in the current tenant and issue a token pair and a device token.

    Unknown email, wrong password and a user of another tenant answer identically; whether the
    account is inactive is only revealed to someone who knows its password. Every attempt is
    audited (``login`` / ``login_failed``) with the email that was tried, and every failure
    counts towards the email's (or the trusted device's) failure delay; the throttle checked the
    buckets before the view ran.
    """
    attempted = normalize_email(email)
    attempt = login_attempt(
        schema=current_schema_name(),
        ip=context.ip if context is not None else "",
        email=attempted,
        device_token=device_token,
    )
    user = User.objects.filter(email=attempted).first()
    if user is None:
        # Spend the same hashing time as a real check so response time does not enumerate users.
        User().set_password(password)
    if user is None or not user.check_password(password):
        login_failure_record(attempt=attempt)
        login_audit_record(context=context, attempted=attempted, user=user, succeeded=False)
        raise APIError(status=401, code="invalid_credentials", detail=INVALID_CREDENTIALS_DETAIL)
    if not user.is_active:
        login_failure_record(attempt=attempt)
        login_audit_record(context=context, attempted=attempted, user=user, succeeded=False)
        raise APIError(status=401, code="account_inactive", detail=ACCOUNT_INACTIVE_DETAIL)
    device_id = None
    if device is not None:
        # A sync device (issue 7): registered to this user and not revoked, else 400 / 403.
        from sync.services import device_for_token

        device_id = str(device_for_token(user=user, device_id=device).pk)
    login_success_record(attempt=attempt)
    login_audit_record(context=context, attempted=attempted, user=user, succeeded=True)
    return LoginResult(
        pair=token_pair_issue(user=user, device_id=device_id),
        device_token=device_token_issue(schema=current_schema_name(), email=attempted),
    )


def login_audit_record(
    *, context: RequestContext | None, attempted: str, user: User | None, succeeded: bool
) -> None:
    """A ``login`` / ``login_failed`` event (API or admin; the public schema's trail on the
    operators' host) naming the email that was tried and, when it exists, its account."""
    if context is not None:
        context = replace(
            context,
            actor_id=str(user.pk) if succeeded and user is not None else None,
            actor_email=attempted,
        )
    audit_event_record(
        context=context,
        action=AuditEvent.Action.LOGIN if succeeded else AuditEvent.Action.LOGIN_FAILED,
        object_type=audit_object_type(User),
        object_ids=[user.pk] if user is not None else [],
    )


# --- the account lifecycle by email (docs/accounts.md) -------------------------------------------

LINK_INVALID_DETAIL = "This link is invalid, has expired or was already used. Ask for a new one."
ACCOUNT_DEACTIVATED_DETAIL = (
    "This account was deactivated by your organisation's admin; only they can reactivate it."
)
INVITATION_PENDING_DETAIL = (
    "An invitation for this email is already open; resend it (POST .../{id}/resend/) or revoke it."
)
INVITATION_CLOSED_DETAIL = "This invitation was already accepted or revoked."
RESET_REQUESTED_DETAIL = (
    "If an account with this email exists here, a link to reset its password is on its way."
)
OLD_PASSWORD_WRONG_DETAIL = "The current password is incorrect."  # noqa: S105
CHANGE_THROTTLED_DETAIL = "Too many attempts; try again later."


def _link_invalid() -> APIError:
    return APIError(status=400, code="link_invalid", detail=LINK_INVALID_DETAIL)


def _lifecycle_audit(
    *,
    context: RequestContext | None,
    user: User,
    changed_fields: list[str],
    model: type[Any] = User,
    object_id: uuid.UUID | None = None,
    action: AuditEvent.Action = AuditEvent.Action.UPDATE,
) -> None:
    """An event on the account (or invitation) whose change was made by following a link or by
    the user themself: the actor is that user, whoever the request came from."""
    if context is not None:
        context = replace(context, actor_id=str(user.pk), actor_email=user.email)
    audit_event_record(
        context=context,
        action=action,
        object_type=audit_object_type(model),
        object_ids=[object_id or user.pk],
        changed_fields=changed_fields,
    )


def _valid_hours() -> int:
    return max(1, int(settings.PASSWORD_RESET_TIMEOUT) // 3600)


def user_verification_send(*, user: User) -> None:
    """Email ``user`` a link that verifies the address (and sets a password when there is none)
    and activates the account, after the current transaction commits. Refused (409) for a
    verified or deactivated account."""
    if user.email_verified_at is not None or user.is_active:
        raise APIError(
            status=409, code="already_verified", detail="This account is already verified."
        )
    if user.deactivated_at is not None:
        raise APIError(status=409, code="account_deactivated", detail=ACCOUNT_DEACTIVATED_DETAIL)
    link = tenant_link(
        kind=EmailKind.VERIFICATION,
        query={"uid": str(user.pk), "token": verification_token_make(user=user)},
    )
    account_email_queue(
        kind=EmailKind.VERIFICATION,
        to=user.email,
        context={
            "email": user.email,
            "full_name": user.full_name,
            "link": link,
            "password_required": not user.has_usable_password(),
            "valid_hours": _valid_hours(),
        },
    )


def _link_user(*, uid: str, lock: bool) -> User | None:
    try:
        pk = uuid.UUID(str(uid))
    except ValueError:
        return None
    users = User.objects.select_for_update() if lock else User.objects.all()
    return users.filter(pk=pk).first()


def user_for_verification_link(*, uid: str, token: str) -> User:
    """The user a verification link names, when its token checks here (else 400)."""
    user = _link_user(uid=uid, lock=transaction.get_connection().in_atomic_block)
    if user is None or not verification_token_check(user=user, token=token):
        raise _link_invalid()
    return user


def _activate_by_link(*, user: User, fields: list[str]) -> None:
    """The mailbox is proven: verified, and active unless an admin deactivated the account
    (then 403, and nothing is stored)."""
    if user.deactivated_at is not None:
        raise APIError(status=403, code="account_deactivated", detail=ACCOUNT_DEACTIVATED_DETAIL)
    if user.email_verified_at is None:
        user.email_verified_at = timezone.now()
        fields.append("email_verified_at")
    if not user.is_active:
        user_seat_reserve()
        user.is_active = True
        fields.append("is_active")
        user_access_changed(user_id=user.pk)


@transaction.atomic
def user_verify(
    *, uid: str, token: str, password: str | None, context: RequestContext | None
) -> User:
    """Follow a verification link: the address is verified and the account active, with
    ``password`` set when the account has none (then it is required). Works once: the token's
    key holds ``email_verified_at``. Never activates a deactivated account."""
    user = user_for_verification_link(uid=uid, token=token)
    fields: list[str] = []
    if password:
        _check_password_strength(password=password, user=user)
    elif not user.has_usable_password():
        raise ValidationError({"password": ["This account has no password yet: choose one."]})
    _activate_by_link(user=user, fields=fields)
    if password:
        user.set_password(password)
        fields.append("password")
    user.version = F("version") + 1
    user.save(update_fields=[*fields, "version", "updated_at"])
    user.refresh_from_db(fields=["version", "credentials_version"])
    _lifecycle_audit(context=context, user=user, changed_fields=fields)
    return user


# Invitations


def _invitation_mail(*, invitation: Invitation, token: str, invited_by: User | None) -> None:
    account_email_queue(
        kind=EmailKind.INVITATION,
        to=invitation.email,
        context={
            "full_name": invitation.full_name,
            "role_label": str(Role(invitation.role).label),
            "invited_by": (invited_by.full_name or invited_by.email) if invited_by else "",
            "link": tenant_link(kind=EmailKind.INVITATION, query={"token": token}),
            "expires_at": f"{invitation.expires_at:%Y-%m-%d %H:%M}",
        },
    )


def _new_token_fields() -> tuple[str, dict[str, Any]]:
    token = invitation_token_new()
    now = timezone.now()
    return token, {
        "token_hash": invitation_token_hash(token),
        "sent_at": now,
        "expires_at": now + timedelta(days=int(settings.ACCOUNT_INVITATION_DAYS)),
    }


@transaction.atomic
def invitation_create(
    *, email: str, role: str, full_name: str = "", invited_by: User | None
) -> Invitation:
    """Invite ``email`` to join as ``role``: a row holding the token's hash, and the link by
    email after commit. 409 ``email_taken`` for an address that already has an account here,
    409 ``invitation_pending`` while another invitation for it is open."""
    email = normalize_email(email)
    if User.objects.filter(email=email).exists():
        raise APIError(status=409, code="email_taken", detail=EMAIL_TAKEN_DETAIL)
    token, fields = _new_token_fields()
    try:
        with transaction.atomic():
            invitation = Invitation.objects.create(
                email=email, role=role, full_name=full_name, invited_by=invited_by, **fields
            )
    except IntegrityError:  # the partial unique index: one open invitation per address
        raise APIError(
            status=409, code="invitation_pending", detail=INVITATION_PENDING_DETAIL
        ) from None
    _invitation_mail(invitation=invitation, token=token, invited_by=invited_by)
    return invitation


def _open_invitation_locked(*, invitation: Invitation) -> Invitation:
    locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if locked.accepted_at is not None or locked.revoked_at is not None:
        raise APIError(status=409, code="invitation_closed", detail=INVITATION_CLOSED_DETAIL)
    return locked


@transaction.atomic
def invitation_resend(*, invitation: Invitation, invited_by: User | None) -> Invitation:
    """A new token and expiry, emailed again: the previous link stops working."""
    invitation = _open_invitation_locked(invitation=invitation)
    token, fields = _new_token_fields()
    for name, value in fields.items():
        setattr(invitation, name, value)
    invitation.save(update_fields=list(fields))
    _invitation_mail(invitation=invitation, token=token, invited_by=invited_by)
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation) -> Invitation:
    invitation = _open_invitation_locked(invitation=invitation)
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    return invitation


def invitation_for_token(*, token: str, lock: bool = False) -> Invitation:
    """The open, unexpired invitation ``token`` belongs to in this tenant, else 400
    ``link_invalid`` (unknown, another tenant's, replaced by a resend, revoked, accepted or
    expired all answer the same)."""
    rows = Invitation.objects.select_for_update() if lock else Invitation.objects.all()
    invitation = rows.filter(
        token_hash=invitation_token_hash(token),
        accepted_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).first()
    if invitation is None:
        raise _link_invalid()
    return invitation


@transaction.atomic
def invitation_accept(
    *, token: str, password: str, full_name: str | None, context: RequestContext | None
) -> User:
    """The invitee sets a password: an active, verified account with the invitation's role
    (one of the plan's seats; 409 ``email_taken`` if the address got an account meanwhile)."""
    invitation = invitation_for_token(token=token, lock=True)
    if User.objects.filter(email=invitation.email).exists():
        raise APIError(status=409, code="email_taken", detail=EMAIL_TAKEN_DETAIL)
    user = User(
        email=invitation.email,
        role=invitation.role,
        full_name=full_name if full_name is not None else invitation.full_name,
        is_staff=is_staff_role(invitation.role),
    )
    _check_password_strength(password=password, user=user)
    user_seat_reserve()
    user.set_password(password)
    user.is_active = True
    user.email_verified_at = timezone.now()
    user.save()
    invitation.accepted_at = user.email_verified_at
    invitation.user = user
    invitation.save(update_fields=["accepted_at", "user"])
    _lifecycle_audit(
        context=context,
        user=user,
        changed_fields=["password", "email_verified_at", "is_active"],
        action=AuditEvent.Action.CREATE,
    )
    _lifecycle_audit(
        context=context,
        user=user,
        changed_fields=["accepted_at"],
        model=Invitation,
        object_id=invitation.pk,
    )
    return user


# Password reset and change


def password_reset_request(*, email: str) -> None:
    """Email a reset link when ``email`` has an account here that an admin has not deactivated;
    the caller answers the same either way (RESET_REQUESTED_DETAIL), so nobody learns which
    addresses exist. Throttled per tenant, client IP and email by the view."""
    user = User.objects.filter(email=normalize_email(email), deactivated_at__isnull=True).first()
    if user is None:
        return
    link = tenant_link(
        kind=EmailKind.PASSWORD_RESET,
        query={"uid": str(user.pk), "token": reset_token_make(user=user)},
    )
    account_email_queue(
        kind=EmailKind.PASSWORD_RESET,
        to=user.email,
        context={"email": user.email, "link": link, "valid_hours": _valid_hours()},
    )


def user_for_reset_link(*, uid: str, token: str) -> User:
    user = _link_user(uid=uid, lock=transaction.get_connection().in_atomic_block)
    if user is None or not reset_token_check(user=user, token=token):
        raise _link_invalid()
    return user


def _password_changed_mail(*, user: User) -> None:
    account_email_queue(
        kind=EmailKind.PASSWORD_CHANGED, to=user.email, context={"email": user.email}
    )


@transaction.atomic
def password_reset_confirm(
    *, uid: str, token: str, password: str, context: RequestContext | None
) -> User:
    """Set a new password from a reset link. Works once (the token's HMAC covers the password
    hash) and until PASSWORD_RESET_TIMEOUT. Every session and token of the user ends (User.save);
    an unverified account becomes verified and active (the link proved the mailbox), a
    deactivated one is refused."""
    user = user_for_reset_link(uid=uid, token=token)
    _check_password_strength(password=password, user=user)
    fields = ["password"]
    _activate_by_link(user=user, fields=fields)
    user.set_password(password)
    user.version = F("version") + 1
    user.save(update_fields=[*fields, "version", "updated_at"])
    user.refresh_from_db(fields=["version", "credentials_version"])
    _lifecycle_audit(context=context, user=user, changed_fields=fields)
    _password_changed_mail(user=user)
    return user


@transaction.atomic
def password_change(
    *, user: User, old_password: str, new_password: str, context: RequestContext | None
) -> TokenPair:
    """A signed-in user changes their password: the old one is checked under the login's
    guessing limits (apikit.login_guard; 429 when they refuse), every session and token ends,
    and a fresh token pair for this client is returned."""
    attempt = login_attempt(
        schema=current_schema_name(),
        ip=context.ip if context is not None else "",
        email=user.email,
        device_token=None,
    )
    verdict = login_attempt_check(attempt=attempt)
    if not verdict.allowed:
        raise Throttled(wait=verdict.wait_seconds, detail=CHANGE_THROTTLED_DETAIL)
    user = User.objects.select_for_update().get(pk=user.pk)
    if not user.check_password(old_password):
        login_failure_record(attempt=attempt)
        raise ValidationError({"old_password": [OLD_PASSWORD_WRONG_DETAIL]})
    _check_password_strength(password=new_password, user=user, field="new_password")
    user.set_password(new_password)
    user.version = F("version") + 1
    user.save(update_fields=["password", "version", "updated_at"])
    user.refresh_from_db(fields=["version", "credentials_version"])
    _lifecycle_audit(context=context, user=user, changed_fields=["password"])
    _password_changed_mail(user=user)
    return token_pair_issue(user=user)
