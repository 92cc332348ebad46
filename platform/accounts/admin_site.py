"""The Django admin sites: one per tenant kind, branded per tenant, and every one with the
password checks guarded like the API's login (apikit.login_guard).

Sites (issue 19, items 6 and 8):

* ``admin.site`` (accounts.admin_apps makes it a ``TenantAdminSite``) is where every app's
  admin module registers its ModelAdmins, and it is the *mixed* kind's site (settings/urls.py);
* ``clinic_site`` and ``farm_site`` are the clinic and farm kinds' sites (settings/urls_clinic.py,
  settings/urls_farm.py): ``kind_sites_populate`` (from the admin app's ``ready()``, after
  autodiscovery) registers on each the ModelAdmin classes of ``admin.site`` except those of the
  domain app the kind leaves out (tenants.kinds). Each site is its own instance, so a clinic
  tenant's admin has no farm pages at all (404 like any unknown admin URL) and its app list no
  farm section;
* a ``TenantAdminSite`` reads "<tenant name> — Verdant" on its tenant's host; the operators' site
  on the public host (tenants.admin) has its own fixed title.

Every one of them is a ``LoginGuardedAdminSite``:

* their login form (``AdminSite.login_form``) is ``GuardedAdminLoginForm``: its ``clean()``
  checks the login buckets before ``authenticate()`` and, after it, records the failure or the
  success and the ``login`` / ``login_failed`` audit event (the tenant's trail, or the public
  schema's on the operators' host). Unknown emails, wrong passwords, inactive accounts and
  non-staff users with the right password all get Django's one "Please enter the correct email
  and password for a staff account" answer and all count as failures, so neither the page nor
  the throttle tells them apart;
* a refused attempt is the login page with the reason, HTTP 429 and ``Retry-After``;
* a successful login sets the device cookie (a fresh device token, see apikit.login_guard), so
  this browser is counted apart from anyone guessing at the same account;
* the password-change page's old-password check charges the same buckets (a stolen session must
  not become an unthrottled password oracle).

Not a signal or an authentication backend: ``user_login_failed`` cannot refuse an attempt and is
never sent for a non-staff user with the right password (authentication succeeded).
"""

from __future__ import annotations

import math
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm, AdminPasswordChangeForm
from django.contrib.auth.views import PasswordChangeView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.models import User
from accounts.services import login_audit_record, normalize_email
from apikit.login_guard import (
    LoginAttempt,
    device_token_issue,
    login_attempt,
    login_attempt_check,
    login_failure_record,
    login_success_record,
)
from apikit.request_context import client_ip, request_context
from apikit.tenancy import current_schema_name
from tenants.kinds import kind_hidden_apps
from tenants.models import Tenant

DEVICE_COOKIE_NAME = "verdant-device"
# Over https (SESSION_COOKIE_SECURE) the name carries the __Host- prefix: browsers then accept it
# only Secure, host-only and for path /, so a sibling tenant host can never plant one.
DEVICE_COOKIE_SECURE_NAME = "__Host-verdant-device"


def throttled_message(*, seconds: int) -> str:
    unit = "second" if seconds == 1 else "seconds"
    return f"Too many attempts. Try again in {seconds} {unit}."


def device_cookie_name() -> str:
    return DEVICE_COOKIE_SECURE_NAME if settings.SESSION_COOKIE_SECURE else DEVICE_COOKIE_NAME


def _attempt(request: HttpRequest, *, email: str) -> LoginAttempt:
    return login_attempt(
        schema=current_schema_name(),
        ip=client_ip(request),
        email=email,
        device_token=request.COOKIES.get(device_cookie_name()),
    )


class _RefusedError(ValidationError):
    """A check the login buckets refused; ``retry_after`` in whole seconds."""

    def __init__(self, *, wait_seconds: float) -> None:
        self.retry_after = max(1, math.ceil(wait_seconds))
        super().__init__(throttled_message(seconds=self.retry_after), code="throttled")


def _check_buckets(attempt: LoginAttempt) -> None:
    verdict = login_attempt_check(attempt=attempt)
    if not verdict.allowed:
        raise _RefusedError(wait_seconds=verdict.wait_seconds)


class GuardedAdminLoginForm(AdminAuthenticationForm):
    """The login form of both admin sites (see the module docstring)."""

    retry_after: int | None = None

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password or self.request is None:
            return super().clean()  # a missing field: nothing is checked, nothing is charged
        email = normalize_email(username)
        attempt = _attempt(self.request, email=email)
        try:
            _check_buckets(attempt)
        except _RefusedError as refused:
            self.retry_after = refused.retry_after
            raise
        try:
            cleaned_data = super().clean()
        except ValidationError:
            # Looked up again even when authentication found the user (a non-staff one): every
            # failure does the same work, so timing tells none of them apart.
            login_failure_record(attempt=attempt)
            login_audit_record(
                context=request_context(self.request),
                attempted=email,
                user=User.objects.filter(email=email).first(),
                succeeded=False,
            )
            raise
        login_success_record(attempt=attempt)
        login_audit_record(
            context=request_context(self.request),
            attempted=email,
            user=self.user_cache,
            succeeded=True,
        )
        return cleaned_data


class GuardedPasswordChangeForm(AdminPasswordChangeForm):
    """The admin's own password change: the old password is checked like a login."""

    retry_after: int | None = None

    def __init__(self, user: Any, *args: Any, request: HttpRequest | None = None, **kwargs: Any):
        super().__init__(user, *args, **kwargs)
        self.request = request

    def clean_old_password(self) -> str:
        if self.request is None:
            return str(super().clean_old_password())
        attempt = _attempt(self.request, email=normalize_email(self.user.get_username()))
        try:
            _check_buckets(attempt)
        except _RefusedError as refused:
            self.retry_after = refused.retry_after
            raise
        try:
            old_password = super().clean_old_password()
        except ValidationError:
            login_failure_record(attempt=attempt)
            raise
        return str(old_password)


class GuardedPasswordChangeView(PasswordChangeView):
    form_class = GuardedPasswordChangeForm

    def get_form_kwargs(self) -> dict[str, Any]:
        return {**super().get_form_kwargs(), "request": self.request}


def _refusal_status(response: HttpResponseBase) -> HttpResponseBase:
    """A page whose form the login buckets refused answers 429 with Retry-After."""
    if isinstance(response, TemplateResponse) and response.context_data:
        retry_after = getattr(response.context_data.get("form"), "retry_after", None)
        if retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
    return response


class LoginGuardedAdminSite(admin.AdminSite):
    """An admin site whose login and password change are guarded (see the module docstring)."""

    login_form = GuardedAdminLoginForm

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> Any:
        response = super().login(request, extra_context)
        # LoginView redirects after a POST only when the form was valid: the user is logged in.
        if request.method == "POST" and response.status_code == 302:
            email = normalize_email(str(getattr(request.user, "email", "")))
            response.set_cookie(
                device_cookie_name(),
                device_token_issue(schema=current_schema_name(), email=email),
                max_age=int(settings.LOGIN_DEVICE_TOKEN_DAYS) * 86_400,
                path="/",
                secure=bool(settings.SESSION_COOKIE_SECURE),
                httponly=True,
                samesite="Strict",
            )
        return _refusal_status(response)

    def password_change(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        """Django's ``AdminSite.password_change`` with the guarded form."""
        defaults: dict[str, Any] = {
            "success_url": reverse("admin:password_change_done", current_app=self.name),
            "extra_context": {**self.each_context(request), **(extra_context or {})},
        }
        if self.password_change_template is not None:
            defaults["template_name"] = self.password_change_template
        request.current_app = self.name
        return _refusal_status(GuardedPasswordChangeView.as_view(**defaults)(request))


PRODUCT_NAME = "Verdant"


def tenant_admin_title(tenant_name: str) -> str:
    return f"{tenant_name} — {PRODUCT_NAME}"


class TenantAdminSite(LoginGuardedAdminSite):
    """A tenant host's admin: guarded, and titled with the tenant's name (``request.tenant``,
    set by the routing middleware; the name is autoescaped like any template variable)."""

    site_header = PRODUCT_NAME
    site_title = PRODUCT_NAME
    index_title = "Administration"

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context: dict[str, Any] = super().each_context(request)
        tenant = getattr(request, "tenant", None)
        if tenant is not None:
            title = tenant_admin_title(tenant.name)
            context["site_header"] = title
            context["site_title"] = title
        return context


# The same instance name as admin.site: each tenant URL conf mounts exactly one of them, and
# "admin:..." reverses (templates, audit's autocomplete check) stay what they were.
clinic_site = TenantAdminSite(name="admin")
farm_site = TenantAdminSite(name="admin")


def kind_site(kind: str) -> admin.AdminSite:
    """The admin site a tenant of ``kind`` is served."""
    sites: dict[str, admin.AdminSite] = {
        Tenant.Kind.CLINIC: clinic_site,
        Tenant.Kind.FARM: farm_site,
        Tenant.Kind.MIXED: admin.site,
    }
    return sites[kind]


def kind_sites_populate() -> None:
    """Register on the clinic and farm sites what ``admin.site`` has, minus the domain app each
    leaves out. Through public AdminSite methods only (``is_registered``, ``get_model_admin``,
    ``register``): registering the ModelAdmin class again gives the site its own instance."""
    for kind in (Tenant.Kind.CLINIC, Tenant.Kind.FARM):
        site = kind_site(kind)
        hidden = kind_hidden_apps(kind)
        for model in apps.get_models():
            if model._meta.app_label in hidden or not admin.site.is_registered(model):
                continue
            if not site.is_registered(model):
                site.register(model, type(admin.site.get_model_admin(model)))
