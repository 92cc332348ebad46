"""JWT authentication bound to the tenant: a token is only valid on the host of the tenant that
issued it (django-tenants #983, simplejwt #758).

simplejwt verifies every token (signature, expiry) and the user is read from the database on
every request, one query by primary key: a role change, a deactivation, a deletion or a password
change (``credentials_version``, the ``cv`` claim) is seen by the very next request in every
process, and no model instance is shared between threads. Issue 22 item 3 removed the
per-process memories of verified tokens and of user instances that stood here before
(docs/decisions.md).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from apikit.tenancy import current_schema_name

TENANT_CLAIM = "tid"
ROLE_CLAIM = "role"
# The sync device a token was issued for (issue 7); see check_token_device.
DEVICE_CLAIM = "did"
# The user's credentials_version when the token was issued (issue 21); see credentials_current.
CREDENTIALS_VERSION_CLAIM = "cv"
DEVICE_REVOKED_DETAIL = (
    "This device was revoked by an administrator; sign in again on a registered device."
)
DEVICE_UNKNOWN_DETAIL = "This token names a device that is not registered to this account."
WRONG_TENANT_DETAIL = "This token was issued for another organisation; log in on this host."
USER_NOT_FOUND_DETAIL = "The account of this token no longer exists."
USER_INACTIVE_DETAIL = "This account is not active. Ask your organisation's admin to activate it."
CREDENTIALS_CHANGED_DETAIL = (
    "The password of this account changed since this token was issued; log in again."
)


def token_belongs_here(token: Token | dict[str, Any]) -> bool:
    return token.get(TENANT_CLAIM) == current_schema_name()


def credentials_current(*, token: Token | dict[str, Any], user: Any) -> bool:
    """Whether ``token`` was issued since the user's last password change. Tokens issued before
    the claim existed count as version 0: they last until the user's first change."""
    return bool(token.get(CREDENTIALS_VERSION_CLAIM, 0) == user.credentials_version)


class TenantJWTAuthentication(JWTAuthentication):
    def get_validated_token(self, raw_token: bytes) -> Token:
        token = super().get_validated_token(raw_token)
        if not token_belongs_here(token):
            raise exceptions.AuthenticationFailed(WRONG_TENANT_DETAIL, code="token_not_valid")
        return token

    def get_user(self, validated_token: Token) -> Any:
        user_id = validated_token.get(api_settings.USER_ID_CLAIM)
        if user_id is None:
            raise InvalidToken("Token contained no recognizable user identification")
        # The active tenant's schema (search_path), so the same id in another tenant is never read.
        user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
        if user is None:
            raise exceptions.AuthenticationFailed(USER_NOT_FOUND_DETAIL, code="user_not_found")
        if not user.is_active:
            raise exceptions.AuthenticationFailed(USER_INACTIVE_DETAIL, code="user_inactive")
        if not credentials_current(token=validated_token, user=user):
            raise exceptions.AuthenticationFailed(
                CREDENTIALS_CHANGED_DETAIL, code="token_not_valid"
            )
        device_id = validated_token.get(DEVICE_CLAIM)
        if device_id is not None:
            check_token_device(device_id=str(device_id), user_id=str(user_id))
        return user


def check_token_device(*, device_id: str, user_id: str) -> None:
    """A token naming a sync device is only good while that device is registered to its user
    and not revoked: 403 ``device_revoked`` / ``device_unknown`` otherwise. Reads a per-process
    cache (sync.selectors.device_state): no query on a warm process."""
    from apikit.errors import APIError
    from sync.selectors import device_state

    state = device_state(device_id)
    if state is None or state.user_id != user_id:
        raise APIError(status=403, code="device_unknown", detail=DEVICE_UNKNOWN_DETAIL)
    if state.revoked:
        raise APIError(status=403, code="device_revoked", detail=DEVICE_REVOKED_DETAIL)
