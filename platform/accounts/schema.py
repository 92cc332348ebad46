"""OpenAPI description of the tenant-bound JWT authentication."""

from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme


class TenantJWTScheme(SimpleJWTScheme):
    target_class = "accounts.authentication.TenantJWTAuthentication"
    name = "tenantJWT"
