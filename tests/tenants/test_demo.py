"""``provision_demo`` (what ``make run`` calls): a clinic and a farm that read like real ones —
every demo user named, the clinic's board and diaries, the farm's fields, crops, plantings,
observations and harvests within model validation and the domain's rules — and a second run that
adds nothing. The farm seed is deterministic. The shared alpha / beta tenants are left alone."""

from __future__ import annotations

import datetime as dt
import io
import itertools
from typing import Any

from django.core.management import call_command
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from accounts.models import User
from accounts.roles import Role
from clinical.models import Appointment, AppointmentStatus, Facility, Patient
from farms import rules as farm_rules
from farms.geometry import boundary_parse
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from tenants.models import Tenant
from tenants.services import tenant_provision
from tests.conftest import TenantWorld

FARM_MODELS = (Farm, Field, Crop, Planting, Observation, Harvest)


def _provision_demo() -> str:
    out = io.StringIO()
    call_command("provision_demo", stdout=out)
    return out.getvalue()


def _counts(tenant: Tenant) -> dict[str, int]:
    with tenant_context(tenant):
        return {
            model._meta.label: model.all_objects.count()
            for model in (Facility, Patient, Appointment, *FARM_MODELS)
        } | {"users": User.objects.count()}


def _farm_snapshot() -> dict[str, Any]:
    """Every column of every farm row but the times the rows were written."""
    snapshot = {}
    for model in FARM_MODELS:
        columns = [
            field.attname
            for field in model._meta.concrete_fields
            if field.name not in {"created_at", "updated_at"}
        ]
        rows = model.all_objects.values_list(*columns)
        snapshot[model._meta.label] = sorted(tuple(str(value) for value in row) for row in rows)
    return snapshot


def test_provision_demo_is_named_realistic_valid_and_idempotent(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    others = {world.tenant.slug: _counts(world.tenant) for world in (alpha, beta)}
    out = _provision_demo()
    assert "clinician@acme.test (clinician, Marcus Reed)" in out
    assert "agent@greenacre.test (field_agent, Brian Otieno)" in out
    acme = Tenant.objects.get(slug="acme")
    greenacre = Tenant.objects.get(slug="greenacre")
    assert (acme.kind, greenacre.kind) == (Tenant.Kind.CLINIC, Tenant.Kind.FARM)

    with tenant_context(acme):
        assert all(User.objects.values_list("full_name", flat=True))
        clinicians = dict(
            User.objects.filter(role=Role.CLINICIAN).values_list("email", "full_name")
        )
        assert clinicians == {
            "clinician@acme.test": "Marcus Reed",
            "clinician2@acme.test": "Katrin Albers",
        }
        diaries = {
            email: set(
                Appointment.objects.filter(clinician__email=email).values_list(
                    "facility__code", flat=True
                )
            )
            for email in clinicians
        }
        assert diaries == {"clinician@acme.test": {"HARBOR"}, "clinician2@acme.test": {"NORTH"}}
        statuses = set(Appointment.objects.values_list("status", flat=True))
        assert statuses == set(AppointmentStatus.values)
        assert Patient.objects.count() == 200

    with tenant_context(greenacre):
        assert all(User.objects.values_list("full_name", flat=True))
        _check_farm(today=timezone.localdate())

    first = {tenant.slug: _counts(tenant) for tenant in (acme, greenacre)}
    again = _provision_demo()
    assert "0 new patients" in again
    assert {tenant.slug: _counts(tenant) for tenant in (acme, greenacre)} == first
    # Two tenants with colliding data elsewhere: the demo touched neither.
    assert {world.tenant.slug: _counts(world.tenant) for world in (alpha, beta)} == others


def _check_farm(*, today: dt.date) -> None:
    """Model validation and the farm domain's rules, row by row."""
    now = timezone.now()
    farms = list(Farm.objects.all())
    assert len(farms) == 3
    assert len({farm.name for farm in farms}) == 3
    for farm in farms:
        farm.full_clean()
        farm_rules.farm_timezone_check(timezone=farm.timezone)
        fields = list(Field.objects.filter(farm=farm).order_by("name"))
        assert len(fields) == 4
        assert len({field.name for field in fields}) == 4
        for field in fields:
            field.full_clean()
            parsed = boundary_parse(field.boundary)
            assert field.boundary["type"] == "Polygon"
            ring = field.boundary["coordinates"][0]
            assert ring[0] == ring[-1]
            assert len(ring) >= 8
            assert abs(parsed.area_ha - field.area_ha) < 0.01
            assert 1 < field.area_ha < 40
        # Plots of one farm never overlap (their bounding boxes are apart).
        for one, other in itertools.combinations(fields, 2):
            apart = (
                one.bbox_max_lon < other.bbox_min_lon
                or other.bbox_max_lon < one.bbox_min_lon
                or one.bbox_max_lat < other.bbox_min_lat
                or other.bbox_max_lat < one.bbox_min_lat
            )
            assert apart, (one.name, other.name)
    for crop in Crop.objects.all():
        crop.full_clean()
    for planting in Planting.objects.all():
        planting.full_clean()
        farm_rules.planting_dates_check(
            planted_on=planting.planted_on, expected_harvest_on=planting.expected_harvest_on
        )
    harvests = list(Harvest.objects.select_related("planting"))
    assert harvests
    for harvest in harvests:
        harvest.full_clean()
        farm_rules.harvest_planting_check(planting_status=harvest.planting.status)
        farm_rules.harvest_date_check(
            harvested_on=harvest.harvested_on, planted_on=harvest.planting.planted_on
        )
        farm_rules.harvest_not_future_check(harvested_on=harvest.harvested_on, today=today)
        assert farm_rules.harvest_quantity_check(quantity_kg=harvest.quantity_kg) == (
            harvest.quantity_kg
        )
    observations = list(Observation.objects.select_related("planting"))
    assert len(observations) > 1000
    assert {o.kind for o in observations} >= {"soil_moisture", "temperature", "rainfall"}
    for observation in observations:
        # Every field's validation; the foreign keys and the table's constraints were enforced by
        # PostgreSQL when the rows went in, so full_clean's per-row queries for them are skipped
        # (3,000 rows).
        observation.full_clean(
            exclude=["field", "planting", "recorded_by", "created_by"], validate_constraints=False
        )
        farm_rules.observation_time_check(observed_at=observation.observed_at, now=now)
        farm_rules.observation_planting_check(
            field_id=observation.field_id,
            planting_field_id=observation.planting.field_id if observation.planting else None,
        )
        value, unit = farm_rules.observation_value(
            kind=observation.kind,
            value=observation.value,
            unit=observation.unit,
            text=observation.text,
        )
        assert (value, unit) == (observation.value, observation.unit), observation.kind


def test_a_re_run_names_unnamed_demo_users_and_keeps_names_someone_gave(db: None) -> None:
    _provision_demo()
    acme = Tenant.objects.get(slug="acme")
    with tenant_context(acme):
        # Demo users of older runs had no name.
        User.objects.filter(email="nurse@acme.test").update(full_name="")
        User.objects.filter(email="reception@acme.test").update(full_name="Front desk")
    _provision_demo()
    with tenant_context(acme):
        names = dict(User.objects.values_list("email", "full_name"))
    assert names["nurse@acme.test"] == "Priya Nair"
    assert names["reception@acme.test"] == "Front desk"


def test_the_farm_seed_is_deterministic(db: None) -> None:
    tenant = tenant_provision(
        slug="demofarm", name="Demo Farm", kind=Tenant.Kind.FARM, admin_email="admin@demofarm.test"
    ).tenant
    with tenant_context(tenant):
        with transaction.atomic():
            call_command("seed_farm_demo", "--tenant", "demofarm", stdout=io.StringIO())
            first = _farm_snapshot()
            transaction.set_rollback(True)
        assert Farm.all_objects.count() == 0
        call_command("seed_farm_demo", "--tenant", "demofarm", stdout=io.StringIO())
        second = _farm_snapshot()
    assert first == second
    assert len(first["farms.Observation"]) > 1000
