"""Issuing, rotating and revoking the tenant-bound JWT pair."""

from dataclasses import dataclass
from typing import Any

from django.db import IntegrityError, transaction
from rest_framework_simplejwt.exceptions import TokenBackendError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.state import token_backend
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.authentication import (
    CREDENTIALS_VERSION_CLAIM,
    DEVICE_CLAIM,
    ROLE_CLAIM,
    TENANT_CLAIM,
    check_token_device,
    credentials_current,
    token_belongs_here,
)
from accounts.models import User
from apikit.errors import APIError
from apikit.tenancy import current_schema_name

TOKEN_INVALID_DETAIL = "The refresh token is invalid, expired or already used; log in again."  # noqa: S105


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str


def token_pair_issue(*, user: User, device_id: str | None = None) -> TokenPair:
    """A new refresh + access pair carrying the tenant (``tid``), role and credentials version
    (``cv``), and the sync device (``did``) when the login named one (checked by the caller)."""
    refresh = RefreshToken.for_user(user)
    refresh[TENANT_CLAIM] = current_schema_name()
    refresh[ROLE_CLAIM] = user.role
    refresh[CREDENTIALS_VERSION_CLAIM] = user.credentials_version
    if device_id is not None:
        refresh[DEVICE_CLAIM] = device_id
    return TokenPair(access=str(refresh.access_token), refresh=str(refresh))


def _invalid() -> APIError:
    return APIError(status=401, code="token_not_valid", detail=TOKEN_INVALID_DETAIL)


def _verified_refresh_claims(raw: str) -> dict[str, Any]:
    """Claims of a correctly signed, unexpired refresh token issued by this tenant."""
    try:
        claims: dict[str, Any] = token_backend.decode(raw, verify=True)  # type: ignore[arg-type]
    except TokenBackendError:
        raise _invalid() from None
    if claims.get(api_settings.TOKEN_TYPE_CLAIM) != "refresh" or not token_belongs_here(claims):
        raise _invalid()
    return claims


def _blacklist(*, jti: str) -> bool:
    """Blacklist one issued token; False when it already was (a reuse) or was never issued here."""
    outstanding = OutstandingToken.objects.filter(jti=jti).first()
    if outstanding is None:
        return False
    try:
        with transaction.atomic():
            _, created = BlacklistedToken.objects.get_or_create(token=outstanding)
    except IntegrityError:
        return False
    return created


def refresh_tokens_revoke_all(*, user: User) -> int:
    """Blacklist every refresh token of ``user`` (deactivation, password change, detected token
    theft)."""
    pending = list(OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True))
    BlacklistedToken.objects.bulk_create(
        [BlacklistedToken(token=token) for token in pending], ignore_conflicts=True
    )
    return len(pending)


def token_pair_rotate(*, raw_refresh: str) -> TokenPair:
    """Exchange a refresh token for a new pair; the old one can never be used again.

    Presenting an already-rotated token means it leaked: every refresh token of that user is
    revoked (refresh-token rotation with reuse detection, OAuth 2.0 Security BCP). A token issued
    before the user's last password change is refused.
    """
    claims = _verified_refresh_claims(raw_refresh)
    user = User.objects.filter(
        pk=str(claims.get(api_settings.USER_ID_CLAIM)), is_active=True
    ).first()
    if user is None or not credentials_current(token=claims, user=user):
        raise _invalid()
    device_id = claims.get(DEVICE_CLAIM)
    if device_id is not None:
        # A revoked device cannot refresh its way back in (403 device_revoked).
        check_token_device(device_id=str(device_id), user_id=str(user.pk))
    with transaction.atomic():
        first_use = _blacklist(jti=str(claims[api_settings.JTI_CLAIM]))
        if first_use:
            return token_pair_issue(
                user=user, device_id=str(device_id) if device_id is not None else None
            )
    refresh_tokens_revoke_all(user=user)
    raise _invalid()


def refresh_token_revoke(*, raw_refresh: str) -> None:
    """Log out: the refresh token can no longer be exchanged. Revoking twice is not an error."""
    claims = _verified_refresh_claims(raw_refresh)
    _blacklist(jti=str(claims[api_settings.JTI_CLAIM]))


def refresh_token_user_id(*, raw_refresh: str) -> str | None:
    """The user a correctly signed, unexpired refresh token of this tenant names, else None. No
    database read: the throttle uses it to charge a refresh to its user's buckets."""
    try:
        claims = _verified_refresh_claims(raw_refresh)
    except APIError:
        return None
    user_id = claims.get(api_settings.USER_ID_CLAIM)
    return str(user_id) if user_id is not None else None
