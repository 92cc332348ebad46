import os
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.roles import Role
from accounts.services import user_create, user_update
from tenants.models import Tenant
from tenants.services import tenant_host, tenant_provision

# Idempotent commands filling each demo tenant with realistic data to explore.
DEMO_SEEDERS = {Tenant.Kind.CLINIC: "seed_clinic_demo", Tenant.Kind.FARM: "seed_farm_demo"}
# (local part of the email, role, full name). Two clinicians: seed_clinic_demo gives each one
# facility's diary, in email order (clinician2 in Berlin, clinician in New York).
DEMO_USERS = {
    Tenant.Kind.CLINIC: [
        ("clinician", Role.CLINICIAN, "Marcus Reed"),
        ("clinician2", Role.CLINICIAN, "Katrin Albers"),
        ("nurse", Role.NURSE, "Priya Nair"),
        ("reception", Role.RECEPTIONIST, "Tom Fischer"),
    ],
    Tenant.Kind.FARM: [
        ("agronomist", Role.AGRONOMIST, "Wanjiru Kamau"),
        ("agent", Role.FIELD_AGENT, "Brian Otieno"),
    ],
}


class Command(BaseCommand):
    help = (
        "Provision the demo tenants of `make run` (a clinic and a farm) with one user per role; "
        "idempotent. Slugs and password: VERDANT_DEMO_CLINIC, VERDANT_DEMO_FARM, VERDANT_DEMO_PASSWORD."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", default="8000", help="port shown in the printed URLs")

    def handle(self, *args: Any, **options: Any) -> None:
        password = os.environ.get("VERDANT_DEMO_PASSWORD", "verdant-demo-2026")
        demos = [
            (os.environ.get("VERDANT_DEMO_CLINIC", "acme"), "Acme Clinics", Tenant.Kind.CLINIC),
            (os.environ.get("VERDANT_DEMO_FARM", "greenacre"), "Greenacre Farms", Tenant.Kind.FARM),
        ]
        lines = []
        for slug, name, kind in demos:
            tenant = Tenant.objects.filter(slug=slug).first()
            if tenant is None:
                tenant = tenant_provision(
                    slug=slug,
                    name=name,
                    kind=kind,
                    admin_email=f"admin@{slug}.test",
                    admin_password=password,
                ).tenant
            with tenant_context(tenant):
                for local_part, role, full_name in DEMO_USERS[kind]:
                    email = f"{local_part}@{slug}.test"
                    user = User.objects.filter(email=email).first()
                    if user is None:
                        user_create(
                            email=email,
                            role=role,
                            password=password,
                            is_active=True,
                            full_name=full_name,
                        )
                    elif not user.full_name:
                        # Demo users of older runs had no name; a name someone gave is kept.
                        user_update(user=user, full_name=full_name)
            call_command(DEMO_SEEDERS[kind], "--tenant", slug, stdout=self.stdout)
            url = f"http://{tenant_host(slug)}:{options['port']}"
            logins = [f"admin@{slug}.test (tenant_admin)"] + [
                f"{local_part}@{slug}.test ({role}, {full_name})"
                for local_part, role, full_name in DEMO_USERS[kind]
            ]
            lines.append(
                f"  {name}: {url}/api/v1/  admin: {url}/admin/\n    " + "\n    ".join(logins)
            )
        self.stdout.write(
            "Demo tenants (password for every demo login: "
            + password
            + "):\n"
            + "\n".join(lines)
            + f"\n  Platform operators: http://{settings.BASE_DOMAIN}:{options['port']}/admin/ "
            "(create one with `make manage ARGS=createsuperuser`)"
        )
