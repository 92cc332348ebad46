"""JWT authentication bound to the tenant: a token is only valid on the host of the tenant that
issued it (django-tenants #983, simplejwt #758).

The authenticated user is read from a per-process cache (apikit.process_cache) rather than the
database on every request: a warm authenticated request needs no database round trip for
identity. Any change to a user (role, activation, deletion, password) calls
``identity_changed()``, which drops this process's entries at once and every other process's
within ``TENANT_ROUTING_RECHECK_SECONDS`` (1 s by default). A password change also bumps the
user's ``credentials_version``: a token whose ``cv`` claim is older is refused, with no query.

Verified tokens are remembered per process too (``_VerifiedTokens``): checking a token's
signature and decoding it costs more than the rest of authentication together (PyJWT validates
the base64 alphabet character by character), and the same access token arrives on every request
of a session for its 15 minutes. A remembered token is only reused for the exact same bytes, and
its expiry is checked again on every request. simplejwt reads the signing key once per process
(``rest_framework_simplejwt.state``), so rotating it means a restart, which empties this memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import transaction
from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import Token

from apikit.process_cache import ProcessCache
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


_users: ProcessCache[tuple[str, str], Any] | None = None
_users_lock = threading.Lock()


def _user_cache() -> ProcessCache[tuple[str, str], Any]:
    global _users
    if _users is None:
        with _users_lock:
            if _users is None:
                _users = ProcessCache(
                    name="authenticated-users",
                    redis_url=settings.REDIS_URL,
                    key_prefix=str(settings.CACHES["default"]["KEY_PREFIX"]),
                    recheck_seconds=settings.TENANT_ROUTING_RECHECK_SECONDS,
                    cache_misses=False,
                )
    return _users


def identity_changed() -> None:
    """Call after changing or deleting users: this process forgets them now, every other
    process once the change commits."""
    _user_cache().forget_local()
    transaction.on_commit(_user_cache().publish_change)


def forget_cached_users() -> None:
    _user_cache().forget_local()


class _VerifiedTokens:
    """raw token -> its verified Token and the moment it stops being valid, for tokens that
    passed every check of simplejwt."""

    MAX_ENTRIES = 10_000

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._tokens: dict[bytes, tuple[Token, float]] = {}

    def get(self, raw_token: bytes) -> Token | None:
        found = self._tokens.get(raw_token)
        if found is None:
            return None
        token, valid_until = found
        if self._clock() >= valid_until:
            self._tokens.pop(raw_token, None)
            return None  # verified again from scratch, which raises simplejwt's own error
        return token

    def remember(self, raw_token: bytes, token: Token) -> None:
        # simplejwt's rule: expired once exp <= now - leeway.
        valid_until = float(token["exp"]) + token.get_token_backend().get_leeway().total_seconds()
        if len(self._tokens) >= self.MAX_ENTRIES:
            self._tokens.clear()  # plain and bounded: the live tokens come straight back
        self._tokens[raw_token] = (token, valid_until)


_verified_tokens = _VerifiedTokens()


class TenantJWTAuthentication(JWTAuthentication):
    def get_validated_token(self, raw_token: bytes) -> Token:
        token = _verified_tokens.get(raw_token)
        if token is None:
            token = super().get_validated_token(raw_token)
            _verified_tokens.remember(raw_token, token)
        if not token_belongs_here(token):
            raise exceptions.AuthenticationFailed(WRONG_TENANT_DETAIL, code="token_not_valid")
        return token

    def get_user(self, validated_token: Token) -> Any:
        user_id = validated_token.get(api_settings.USER_ID_CLAIM)
        if user_id is None:
            raise InvalidToken("Token contained no recognizable user identification")
        user = _user_cache().get(
            (current_schema_name(), str(user_id)),
            lambda: self.user_model.objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first(),
        )
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
