"""Writes for accounts: users, roles, logins."""

from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django_tenants.utils import get_public_schema_name
from rest_framework.exceptions import ValidationError

from accounts.models import User
from accounts.roles import Role
from accounts.seats import user_seat_reserve
from accounts.tokens import TokenPair, refresh_tokens_revoke_all, token_pair_issue
from apikit.errors import APIError
from apikit.login_guard import (
    device_token_issue,
    login_attempt,
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


def _check_password_strength(*, password: str, user: User) -> None:
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        raise ValidationError({"password": list(exc.messages)}) from None


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
) -> User:
    """Change a user's role, name or active flag. The last active tenant admin cannot be
    demoted or deactivated, so a tenant can never lock itself out. Reactivating takes a seat
    (409 ``plan_limit_reached`` when the plan has none left)."""
    user = User.objects.select_for_update().get(pk=user.pk)
    if is_active and not user.is_active:
        user_seat_reserve()
    last_admin_check(user=user, role=role, is_active=is_active)
    update_fields = ["updated_at"]
    if role is not None:
        user.role = role
        user.is_staff = is_staff_role(role)
        update_fields += ["role", "is_staff"]
    if full_name is not None:
        user.full_name = full_name
        update_fields.append("full_name")
    if is_active is not None:
        user.is_active = is_active
        update_fields.append("is_active")
    user.save(update_fields=update_fields)
    if is_active is False:
        refresh_tokens_revoke_all(user=user)
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
    user.save(update_fields=["password", "updated_at"])
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
