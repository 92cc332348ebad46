"""Tenant lifecycle: provision (clone from the template), suspend, drop.

Provisioning runs in one database transaction: PostgreSQL DDL is transactional, so a failure at
any step leaves no schema, no tenant row, no domain and no user behind.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.management import call_command
from django.core.validators import validate_email
from django.db import connection, transaction
from django_tenants.utils import quote_schema_name, schema_exists, tenant_context

from accounts.roles import Role
from accounts.services import normalize_email, user_create
from apikit.access_events import tenant_access_changed
from tenants.kinds import KindChangeRefusedError, kind_change_blockers
from tenants.migration_state import schemas_behind
from tenants.models import Domain, Plan, Tenant
from tenants.routing import routing_changed
from tenants.template_script import schema_create_from_template

SLUG_PATTERN = re.compile(r"^[a-z][a-z0-9-]{2,39}$")
RESERVED_SLUGS = frozenset(
    {"www", "api", "app", "admin", "public", "template", "static", "media", "mail", "status"}
)
DEFAULT_PLAN = "standard"
TEMPLATE_SLUG = "__template__"


class ProvisioningError(Exception):
    """A one-line, user-facing reason why a tenant could not be provisioned or changed."""


@dataclass(frozen=True)
class ProvisionedTenant:
    tenant: Tenant
    domain: str
    admin_email: str
    admin_password: str
    password_generated: bool


def schema_name_for(slug: str) -> str:
    """``acme-north`` -> ``t_acme_north``: injective (slugs have no underscores), never a reserved
    or ``pg_`` name, and always a valid unquoted identifier."""
    return "t_" + slug.replace("-", "_")


def tenant_host(slug: str) -> str:
    return f"{slug}.{settings.BASE_DOMAIN}"


# A clinic's own MRN system: an OID (urn:oid:1.2.840...) or an absolute http(s) URL.
_MRN_SYSTEM_PATTERN = re.compile(r"^(urn:oid:[0-2](\.(0|[1-9][0-9]*))+|https?://[^\s]+)$")
MRN_SYSTEM_INVALID = (
    "invalid MRN system {value!r}: give the clinic's own urn:oid:<oid> or an http(s) URL"
)


def mrn_system_default(slug: str) -> str:
    """The MRN identifier system of a tenant without its own: on the deployment's base domain
    (settings, never a request's Host), so it names this tenant alone and never changes."""
    return f"https://{settings.BASE_DOMAIN}/fhir/sid/{slug}/mrn"


def _validate_request(*, slug: str, kind: str, admin_email: str, plan_name: str) -> Plan:
    if not SLUG_PATTERN.fullmatch(slug):
        raise ProvisioningError(
            f"invalid slug {slug!r}: use 3-40 characters, lowercase letters, digits and '-', "
            "starting with a letter"
        )
    if slug in RESERVED_SLUGS:
        raise ProvisioningError(f"slug {slug!r} is reserved; choose another")
    if kind not in Tenant.Kind.values:
        raise ProvisioningError(
            f"invalid kind {kind!r}: use one of {', '.join(Tenant.Kind.values)}"
        )
    try:
        validate_email(admin_email)
    except DjangoValidationError:
        raise ProvisioningError(f"invalid admin email {admin_email!r}") from None
    if Tenant.objects.filter(slug=slug).exists():
        raise ProvisioningError(f"tenant {slug!r} already exists")
    if schema_exists(schema_name_for(slug)):
        raise ProvisioningError(f"schema {schema_name_for(slug)!r} already exists; drop it first")
    plan = Plan.objects.filter(name=plan_name).first()
    if plan is None:
        raise ProvisioningError(f"unknown plan {plan_name!r}")
    if plan.max_users < 1:
        # The first tenant_admin takes a seat (accounts.seats).
        raise ProvisioningError(
            f"plan {plan_name!r} allows no users (max_users is 0); the first admin needs one"
        )
    return plan


def template_schema_ensure(*, verbosity: int = 0) -> Tenant:
    """Make sure the template schema exists and has every migration applied.

    The template is a tenant row (never routed, never given a domain) so that every
    ``migrate_schemas`` run keeps it current; this also repairs it if a deploy skipped it.
    """
    template_schema = settings.TENANT_TEMPLATE_SCHEMA
    template = Tenant.objects.filter(is_template=True).first()
    if template is None:
        template = Tenant.objects.create(
            slug=TEMPLATE_SLUG,
            schema_name=template_schema,
            name="Template for new tenants",
            kind=Tenant.Kind.MIXED,
            plan=Plan.objects.get_or_create(name=DEFAULT_PLAN)[0],
            is_template=True,
        )
    if not schema_exists(template_schema):
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {quote_schema_name(template_schema)}")
    if schemas_behind([template_schema]):
        call_command(
            "migrate_schemas", schema_name=template_schema, interactive=False, verbosity=verbosity
        )
    return template


def tenant_provision(
    *,
    slug: str,
    name: str,
    kind: str,
    admin_email: str,
    admin_password: str | None = None,
    plan_name: str = DEFAULT_PLAN,
    mrn_system: str | None = None,
) -> ProvisionedTenant:
    """Create a tenant: schema cloned from the template, primary domain, first tenant_admin.
    ``mrn_system``: the clinic's own FHIR identifier system for its MRNs (fixed from then on);
    None: ``mrn_system_default(slug)``."""
    admin_email = normalize_email(admin_email)
    plan = _validate_request(slug=slug, kind=kind, admin_email=admin_email, plan_name=plan_name)
    if mrn_system is not None and not _MRN_SYSTEM_PATTERN.fullmatch(mrn_system):
        raise ProvisioningError(MRN_SYSTEM_INVALID.format(value=mrn_system))
    template_schema_ensure()
    password_generated = admin_password is None
    password = admin_password if admin_password is not None else secrets.token_urlsafe(12)

    with transaction.atomic():
        tenant = Tenant.objects.create(
            slug=slug,
            schema_name=schema_name_for(slug),
            name=name,
            kind=kind,
            plan=plan,
            mrn_system=mrn_system or mrn_system_default(slug),
        )
        # The template's tables, indexes, triggers and bookkeeping rows (django_migrations,
        # auth_permission): the new schema is at the latest migration without running any.
        schema_create_from_template(schema=tenant.schema_name)
        domain = Domain.objects.create(domain=tenant_host(slug), tenant=tenant, is_primary=True)
        with tenant_context(tenant):
            user_create(
                email=admin_email,
                role=Role.TENANT_ADMIN,
                password=password,
                is_active=True,
                full_name=f"{name} admin",
                validate_strength=not password_generated,
            )
        tenant.ready = True
        tenant.save(update_fields=["ready"])
        transaction.on_commit(routing_changed)
    return ProvisionedTenant(
        tenant=tenant,
        domain=domain.domain,
        admin_email=admin_email,
        admin_password=password,
        password_generated=password_generated,
    )


def _get_tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug, is_template=False).first()
    if tenant is None:
        raise ProvisioningError(f"no tenant {slug!r}")
    return tenant


def tenant_set_status(*, slug: str, status: str) -> Tenant:
    """Suspend (archive) or reactivate a tenant; data is kept. Takes effect on every web process
    within TENANT_ROUTING_RECHECK_SECONDS, and on open WebSockets at once: the change is
    published on commit and every real-time process re-checks that tenant's sockets (a
    suspended tenant's close with 4403 within seconds, docs/realtime.md). Every path that
    changes a status (the operators' admin form and actions, ``archive_tenant``) comes here."""
    if status not in Tenant.Status.values:
        raise ProvisioningError(
            f"invalid status {status!r}: use one of {', '.join(Tenant.Status.values)}"
        )
    tenant = _get_tenant(slug)
    with transaction.atomic():
        Tenant.objects.filter(pk=tenant.pk).update(status=status)
        transaction.on_commit(routing_changed)
        tenant_access_changed(schema=tenant.schema_name)
    tenant.status = status
    return tenant


def tenant_archive(*, slug: str) -> Tenant:
    return tenant_set_status(slug=slug, status=Tenant.Status.SUSPENDED)


def tenant_drop(*, slug: str) -> None:
    """Delete the tenant row, its domains and its schema with all data. Irreversible."""
    tenant = _get_tenant(slug)
    with transaction.atomic():
        schema = tenant.schema_name
        Domain.objects.filter(tenant=tenant).delete()
        Tenant.objects.filter(pk=tenant.pk).delete()
        with connection.cursor() as cursor:
            cursor.execute(f"DROP SCHEMA IF EXISTS {quote_schema_name(schema)} CASCADE")
        transaction.on_commit(routing_changed)
        # Its open WebSockets find the host gone and close (4404) at once, not at the sweep.
        tenant_access_changed(schema=schema)


def tenant_kind_change(*, slug: str, kind: str) -> Tenant:
    """Change a tenant's kind (an operator action, tenants.admin): refused with
    ``KindChangeRefusedError`` listing what exists while any row of a domain the tenant would
    lose exists. The tenant row is locked while its schema is checked, so two changes cannot
    cross; hosts serve the new kind within TENANT_ROUTING_RECHECK_SECONDS."""
    if kind not in Tenant.Kind.values:
        raise ValueError(f"unknown tenant kind {kind!r}")
    with transaction.atomic():
        tenant = Tenant.objects.select_for_update().get(slug=slug, is_template=False)
        if tenant.kind == kind:
            return tenant
        found = kind_change_blockers(tenant=tenant, kind=kind)
        if found:
            raise KindChangeRefusedError(tenant=tenant, kind=kind, found=found)
        tenant.kind = kind
        tenant.save(update_fields=["kind"])
        transaction.on_commit(routing_changed)
    return tenant
