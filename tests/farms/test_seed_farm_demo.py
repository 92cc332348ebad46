"""seed_farm_demo: plausible data, grants for the demo users, and idempotent."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django_tenants.utils import tenant_context

from accounts.roles import Role
from accounts.services import user_create
from apikit.policy import visible_containers
from farms.models import Farm, Field, Harvest, Observation, Planting
from tests.conftest import TenantWorld


def test_seed_is_idempotent_and_grants_the_demo_users(alpha: TenantWorld) -> None:
    with tenant_context(alpha.tenant):
        agent = user_create(
            email="agent@alpha.test", role=Role.FIELD_AGENT, password=None, is_active=True
        )
        agronomist = user_create(
            email="agronomist@alpha.test", role=Role.AGRONOMIST, password=None, is_active=True
        )
    out = io.StringIO()
    call_command("seed_farm_demo", "--tenant", "alpha", stdout=out)
    assert "Farm demo data in alpha" in out.getvalue()
    with tenant_context(alpha.tenant):
        counts = [model.objects.count() for model in (Farm, Field, Planting, Observation, Harvest)]
        assert counts[:3] == [3, 12, 24]
        assert 2000 <= counts[3] <= 6000
        assert counts[4] == 12
        assert all(0 < field.area_ha < 40 for field in Field.objects.all())
        assert visible_containers(user=agent, container_model=Farm).count() == 1
        assert visible_containers(user=agronomist, container_model=Farm).count() == 2
    call_command("seed_farm_demo", "--tenant", "alpha", stdout=io.StringIO())
    with tenant_context(alpha.tenant):
        again = [model.objects.count() for model in (Farm, Field, Planting, Observation, Harvest)]
    assert again == counts


def test_unknown_tenant_is_a_clear_error(db: None) -> None:
    with pytest.raises(CommandError, match="No tenant 'nowhere'"):
        call_command("seed_farm_demo", "--tenant", "nowhere")
