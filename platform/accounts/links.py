"""The secrets in emailed links: invitation tokens, email verification and password reset tokens.

Every one of them is bound to the tenant it was issued in. User ids and emails collide across
tenants (each schema has its own users), so a token that only named a user would open the
colliding account of another tenant on that tenant's host.

* Invitation tokens are random (``secrets.token_urlsafe``); the row keeps only an HMAC of the
  token keyed by SECRET_KEY and the tenant's id, so neither a database read nor another tenant's
  row can turn into a working link.
* Verification and reset tokens come from Django's ``PasswordResetTokenGenerator`` (a timestamp
  and an HMAC of the user's id, password hash, last login and email; expiry
  ``PASSWORD_RESET_TIMEOUT``) with one ``key_salt`` per purpose, extended with the tenant's id
  and, for verification, the user's ``email_verified_at``. The salt is part of the HMAC's key,
  so a token of one purpose, tenant or verification state never checks under another. (The
  generator's hashed value is built by a private method, ``_make_hash_value``; extending the
  public ``key_salt`` binds the same facts without overriding it.)

A reset token stops working once the password changes (the password hash is in the HMAC); a
verification token once ``email_verified_at`` is set.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import ClassVar

from django.conf import settings
from django.contrib.auth.tokens import PasswordResetTokenGenerator
from django.db import connection

from accounts.models import User

INVITATION_TOKEN_BYTES = 32


def current_tenant_key() -> str:
    """The active tenant's id and schema: what every link secret is bound to."""
    tenant = getattr(connection, "tenant", None)
    pk = getattr(tenant, "pk", None)
    return f"{pk}:{connection.schema_name}"  # type: ignore[attr-defined]


class TenantBoundTokenGenerator(PasswordResetTokenGenerator):
    """Django's generator with the purpose (the class's ``key_salt``), the tenant and any
    ``user_state`` in the key. Built per check: the salt depends on the user."""

    # One per purpose: the start of ``key_salt``.
    purpose_salt: ClassVar[str]

    def __init__(self, *, user: User) -> None:
        super().__init__()
        self.key_salt = f"{self.purpose_salt}|tenant={current_tenant_key()}|{self.user_state(user)}"

    def user_state(self, user: User) -> str:
        return ""


class VerificationTokenGenerator(TenantBoundTokenGenerator):
    purpose_salt = "verdant.accounts.email-verification"

    def user_state(self, user: User) -> str:
        verified = user.email_verified_at
        return f"verified={verified.timestamp():.6f}" if verified else "verified="


class PasswordResetTokenGeneratorForTenant(TenantBoundTokenGenerator):
    purpose_salt = "verdant.accounts.password-reset"


def verification_token_make(*, user: User) -> str:
    return VerificationTokenGenerator(user=user).make_token(user)


def verification_token_check(*, user: User, token: str) -> bool:
    return VerificationTokenGenerator(user=user).check_token(user, token)


def reset_token_make(*, user: User) -> str:
    return PasswordResetTokenGeneratorForTenant(user=user).make_token(user)


def reset_token_check(*, user: User, token: str) -> bool:
    return PasswordResetTokenGeneratorForTenant(user=user).check_token(user, token)


def invitation_token_new() -> str:
    return secrets.token_urlsafe(INVITATION_TOKEN_BYTES)


def invitation_token_hash(token: str) -> str:
    """HMAC-SHA256 of the token under SECRET_KEY and the tenant: the only form stored."""
    key = f"verdant.accounts.invitation|{settings.SECRET_KEY}|{current_tenant_key()}".encode()
    return hmac.new(key, token.encode("utf-8"), hashlib.sha256).hexdigest()
