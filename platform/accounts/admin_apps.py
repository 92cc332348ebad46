"""Django's admin app, with the login-guarded, per-tenant branded site (accounts.admin_site) as
``admin.site`` — the mixed kind's site, where every app registers its ModelAdmins. Listed in
SHARED_APPS / TENANT_APPS instead of ``django.contrib.admin`` (the documented way to replace the
default site)."""

from django.contrib.admin.apps import AdminConfig


class GuardedAdminConfig(AdminConfig):
    default_site = "accounts.admin_site.TenantAdminSite"

    def ready(self) -> None:
        super().ready()  # autodiscover: every app's admin module has registered on admin.site
        # Here, not at the top: this module is imported before the models are loaded.
        from accounts.admin_site import kind_sites_populate

        kind_sites_populate()
