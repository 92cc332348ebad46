"""One admin site per tenant kind (issue 19, item 6) and the admin branded per tenant (item 8):
alpha and beta (colliding users) as a clinic and a farm tenant. Each host's admin lists and
serves only its kind's apps, reads "<tenant name> — Verdant", and keeps the login guard
(issue 21); the operators' host keeps its own title."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import Client
from django_tenants.utils import schema_context

from accounts.admin_site import TenantAdminSite, clinic_site, farm_site, kind_site
from accounts.models import User
from audit.models import AuditEvent
from tenants.admin import operator_site
from tenants.models import Tenant
from tests.conftest import ADMIN_EMAIL, TenantWorld
from tests.tenants.test_kind_shaping import make_kind

WRONG = "not-the-Password-1"


@pytest.fixture
def clinic(alpha: TenantWorld) -> TenantWorld:
    return make_kind(alpha, Tenant.Kind.CLINIC)


@pytest.fixture
def farm(beta: TenantWorld) -> TenantWorld:
    return make_kind(beta, Tenant.Kind.FARM)


def admin_client(world: TenantWorld) -> Client:
    client = Client(HTTP_HOST=world.host)
    response = client.post(
        "/admin/login/?next=/admin/", {"username": ADMIN_EMAIL, "password": world.password}
    )
    assert response.status_code == 302, response.content[:500]
    return client


def app_labels(client: Client) -> set[str]:
    response = client.get("/admin/")
    assert response.status_code == 200
    return {app["app_label"] for app in response.context["app_list"]}


def test_each_kind_has_its_own_site() -> None:
    sites = {kind: kind_site(kind) for kind in Tenant.Kind}
    assert sites[Tenant.Kind.CLINIC] is clinic_site
    assert sites[Tenant.Kind.FARM] is farm_site
    assert sites[Tenant.Kind.MIXED] is admin.site
    assert len({id(site) for site in sites.values()}) == 3
    assert all(isinstance(site, TenantAdminSite) for site in sites.values())
    assert all(site is not operator_site for site in sites.values())


def test_the_clinic_and_farm_sites_hold_their_domain_and_the_platform() -> None:
    from clinical.models import Patient
    from farms.models import Farm
    from sync.models import Device

    assert clinic_site.is_registered(Patient)
    assert not clinic_site.is_registered(Farm)
    assert farm_site.is_registered(Farm)
    assert not farm_site.is_registered(Patient)
    for site in (clinic_site, farm_site):
        assert site.is_registered(User)
        assert site.is_registered(Device)
        assert site.is_registered(AuditEvent)
        # Their own ModelAdmin instances, of the classes admin.site has.
        model_admin = site.get_model_admin(User)
        assert model_admin.admin_site is site
        assert type(model_admin) is type(admin.site.get_model_admin(User))


def test_a_clinic_tenants_admin_lists_and_serves_no_farm_pages(clinic: TenantWorld) -> None:
    client = admin_client(clinic)
    labels = app_labels(client)
    assert "clinical" in labels
    assert "farms" not in labels
    assert {"accounts", "audit", "sync"} <= labels
    assert client.get("/admin/clinical/patient/").status_code == 200
    assert client.get("/admin/farms/farm/").status_code == 404
    assert client.get("/admin/farms/").status_code == 404


def test_a_farm_tenants_admin_lists_and_serves_no_clinical_pages(farm: TenantWorld) -> None:
    client = admin_client(farm)
    labels = app_labels(client)
    assert "farms" in labels
    assert "clinical" not in labels
    assert client.get("/admin/farms/farm/").status_code == 200
    assert client.get("/admin/clinical/patient/").status_code == 404


def test_the_mixed_kind_lists_both_domains(alpha: TenantWorld) -> None:
    client = admin_client(alpha)
    assert {"clinical", "farms"} <= app_labels(client)
    assert client.get("/admin/farms/farm/").status_code == 200
    assert client.get("/admin/clinical/patient/").status_code == 200


@pytest.mark.parametrize("kind", list(Tenant.Kind))
def test_the_admin_reads_the_tenants_name_on_every_page(alpha: TenantWorld, kind: str) -> None:
    world = make_kind(alpha, kind)
    login_page = Client(HTTP_HOST=world.host).get("/admin/login/")
    assert "<title>Log in | Alpha Org — Verdant</title>" in login_page.content.decode()
    client = admin_client(world)
    for path in ("/admin/", "/admin/accounts/user/", "/admin/password_change/"):
        page = client.get(path).content.decode()
        assert "Alpha Org — Verdant" in page, path
        assert "Django administration" not in page, path


def test_two_tenants_each_read_their_own_name(clinic: TenantWorld, farm: TenantWorld) -> None:
    alpha_page = admin_client(clinic).get("/admin/").content.decode()
    beta_page = admin_client(farm).get("/admin/").content.decode()
    assert "Alpha Org — Verdant" in alpha_page
    assert "Beta Org" not in alpha_page
    assert "Beta Org — Verdant" in beta_page
    assert "Alpha Org" not in beta_page


def test_a_tenant_name_is_escaped_in_the_title(alpha: TenantWorld) -> None:
    Tenant.objects.filter(pk=alpha.tenant.pk).update(name="<b>Alpha</b> & Co")
    make_kind(alpha, Tenant.Kind.CLINIC)
    page = Client(HTTP_HOST=alpha.host).get("/admin/login/").content.decode()
    assert "&lt;b&gt;Alpha&lt;/b&gt; &amp; Co — Verdant" in page
    assert "<b>Alpha</b>" not in page


def test_the_operators_host_keeps_the_operators_title(db: None) -> None:
    page = Client(HTTP_HOST="verdant.test").get("/admin/login/").content.decode()
    assert "Verdant platform operations" in page
    assert "— Verdant" not in page
    assert "Django administration" not in page


# --- the login guard of issue 21, on every kind's site ---------------------------------------------


@pytest.mark.parametrize("kind", [Tenant.Kind.CLINIC, Tenant.Kind.FARM])
def test_the_login_guard_holds_on_every_kinds_site(alpha: TenantWorld, kind: str) -> None:
    world = make_kind(alpha, kind)
    client = Client(HTTP_HOST=world.host, REMOTE_ADDR="203.0.113.61")
    answers = [
        client.post("/admin/login/?next=/admin/", {"username": ADMIN_EMAIL, "password": WRONG})
        for _ in range(15)
    ]
    assert [r.status_code for r in answers] == [200] * 10 + [429] * 5
    assert all(1 <= int(r["Retry-After"]) <= 900 for r in answers[10:])
    with schema_context(world.tenant.schema_name):
        assert (
            AuditEvent.objects.filter(actor_email=ADMIN_EMAIL, action="login_failed").count() == 10
        )


@pytest.mark.parametrize("kind", [Tenant.Kind.CLINIC, Tenant.Kind.FARM])
def test_a_login_on_every_kinds_site_sets_the_device_cookie_and_is_audited(
    alpha: TenantWorld, kind: str
) -> None:
    world = make_kind(alpha, kind)
    client = Client(HTTP_HOST=world.host, REMOTE_ADDR="203.0.113.62")
    response = client.post(
        "/admin/login/?next=/admin/", {"username": ADMIN_EMAIL, "password": world.password}
    )
    assert response.status_code == 302
    assert "verdant-device" in response.cookies
    with schema_context(world.tenant.schema_name):
        assert AuditEvent.objects.filter(actor_email=ADMIN_EMAIL, action="login").count() == 1
