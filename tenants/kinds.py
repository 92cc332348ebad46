"""What a tenant's kind serves: the one place that maps ``Tenant.kind`` to the domain apps its
hosts route, its admin lists and its devices sync (issue 19, item 6), and what blocks an
operator's change of a kind (the change itself: tenants.services.tenant_kind_change).

Every schema keeps every table whatever the kind (no django-tenants multi-type mode: one template,
one set of migrations), so a kind only decides what is *served*. A domain is named by its Django
app label, which is also how the admin, the URL confs and the sync registry recognise it without
importing the domain apps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.apps import apps
from django_tenants.utils import tenant_context

from tenants.models import Tenant

CLINICAL = "clinical"
FARMS = "farms"
# The domain apps a kind may leave out; everything else (accounts, audit, notify, sync) is the
# platform every tenant has.
DOMAIN_APPS = frozenset({CLINICAL, FARMS})

_KIND_DOMAINS: dict[str, frozenset[str]] = {
    Tenant.Kind.CLINIC: frozenset({CLINICAL}),
    Tenant.Kind.FARM: frozenset({FARMS}),
    Tenant.Kind.MIXED: DOMAIN_APPS,
}


def kind_domains(kind: str) -> frozenset[str]:
    """The domain apps ``kind`` serves (``KeyError`` for a kind that does not exist)."""
    return _KIND_DOMAINS[kind]


def kind_hidden_apps(kind: str) -> frozenset[str]:
    """The domain apps ``kind`` does not serve."""
    return DOMAIN_APPS - kind_domains(kind)


def kinds_serving(domain: str) -> list[str]:
    """The kinds whose tenants have ``domain`` (e.g. every kind that runs reminders)."""
    return [kind for kind, domains in _KIND_DOMAINS.items() if domain in domains]


@dataclass(frozen=True)
class DomainData:
    """Rows of a domain model that exist in a tenant's schema."""

    app_label: str
    label: str
    count: int

    def __str__(self) -> str:
        return f"{self.label}: {self.count}"


def domain_data_present(*, domains: Iterable[str]) -> list[DomainData]:
    """Every model of ``domains`` holding rows in the *active* schema (archived rows included:
    they are data too), in app then model order. One count per model; an operator action."""
    found = []
    for app_label in sorted(domains):
        for model in apps.get_app_config(app_label).get_models():
            # The base manager: a default manager that hides archived rows must not hide them here.
            count = model._base_manager.count()
            if count:
                found.append(DomainData(app_label=app_label, label=model._meta.label, count=count))
    return found


def kind_change_blockers(*, tenant: Tenant, kind: str) -> list[DomainData]:
    """What keeps ``tenant`` from becoming ``kind``: the rows of every domain it would lose
    (none when the new kind keeps every domain, e.g. clinic -> mixed)."""
    removed = kind_domains(tenant.kind) - kind_domains(kind)
    if not removed:
        return []
    with tenant_context(tenant):
        return domain_data_present(domains=removed)


KIND_CHANGE_REFUSED = (
    "{tenant} cannot become {kind}: it still has {domains} data ({found}). A tenant's kind "
    "only changes when no data of a domain it would lose exists; remove that data first, or "
    "choose a kind that keeps it."
)


class KindChangeRefusedError(Exception):
    def __init__(self, *, tenant: Tenant, kind: str, found: list[DomainData]) -> None:
        self.found = found
        super().__init__(
            KIND_CHANGE_REFUSED.format(
                tenant=tenant.slug,
                kind=Tenant.Kind(kind).label,
                domains=", ".join(sorted({item.app_label for item in found})),
                found=", ".join(str(item) for item in found),
            )
        )
