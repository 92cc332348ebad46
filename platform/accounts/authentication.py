"""JWT authentication bound to the tenant: a token is only valid on the host of the tenant that
issued it (django-tenants #983, simplejwt #758)."""

from typing import Any

from rest_framework import exceptions
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import Token

from apikit.tenancy import current_schema_name

TENANT_CLAIM = "tid"
ROLE_CLAIM = "role"
WRONG_TENANT_DETAIL = "This token was issued for another organisation; log in on this host."


def token_belongs_here(token: Token | dict[str, Any]) -> bool:
    return token.get(TENANT_CLAIM) == current_schema_name()


class TenantJWTAuthentication(JWTAuthentication):
    def get_validated_token(self, raw_token: bytes) -> Token:
        token = super().get_validated_token(raw_token)
        if not token_belongs_here(token):
            raise exceptions.AuthenticationFailed(WRONG_TENANT_DETAIL, code="token_not_valid")
        return token
