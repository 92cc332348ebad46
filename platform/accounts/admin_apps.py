"""Django's admin app, with the login-guarded site (accounts.admin_site) as ``admin.site``, the
site every tenant host serves. Listed in SHARED_APPS / TENANT_APPS instead of
``django.contrib.admin`` (the documented way to replace the default site)."""

from django.contrib.admin.apps import AdminConfig


class GuardedAdminConfig(AdminConfig):
    default_site = "accounts.admin_site.LoginGuardedAdminSite"
