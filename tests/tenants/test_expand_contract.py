"""The expand rule (docs/operations.md, "Migrations at scale"): while the migration Job runs, the web
pods still run the previous release's code against tenant schemas of both versions — migrated and
not yet migrated. So for each project app's newest migration, the models as of its parent (the
previous release's code, as Django's migration state rebuilds it) must create, read, update and
delete rows in a schema at the newest migration as well as in one at the parent.

``alpha`` stays at the newest migration; ``beta`` is migrated back to the parent inside the test's
transaction (PostgreSQL DDL is transactional, so it is rolled back afterwards). For a shared app the
public schema plays both parts, one after the other. Both tenants get rows with the same ids. A row
the generic filler below cannot build even in the parent's own schema is a limit of the filler, not
a finding: that case is skipped and says why. A finding on a released migration that was reviewed is
listed in ``REVIEWED`` with the reason it is safe.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection, models, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.base import Operation
from django.utils import timezone
from django_tenants.utils import get_public_schema_name

from tenants.migration_contract import project_apps
from tests.conftest import TenantWorld

Node = tuple[str, str]

# (app, migration): why old code failing on the migrated schema is acceptable.
REVIEWED: dict[Node, str] = {
    ("tenants", "0006_tenant_fhir"): (
        "Predates the rule. Tenant.updated_at and mrn_system have Python defaults only, so while "
        "the Job applies it the previous release cannot INSERT a tenant (provision_tenant fails "
        "cleanly and is retried after the deploy); reads and updates of existing tenants work. "
        "New columns get db_default= (docs/operations.md, Migrations at scale)."
    ),
}


@dataclass(frozen=True)
class Case:
    app: str
    leaf: Node
    parent: Node
    models: tuple[str, ...]  # lower-case model names the leaf changes and the parent has
    shared: bool

    @property
    def id(self) -> str:
        return f"{self.app}.{self.leaf[1]}"


def _touched(operation: Operation) -> str | None:
    # Operations on an existing model name it in model_name (AddField, AlterField, AddIndex …);
    # CreateModel adds a model the old code does not know, RunSQL / RunPython name none.
    name = getattr(operation, "model_name", None)
    return str(name).lower() if name else None


def _cases() -> Iterator[Case]:
    from django.conf import settings

    loader = MigrationLoader(None, ignore_no_migrations=True)
    shared = {label.rsplit(".", 1)[-1] for label in settings.SHARED_APPS}
    tenant = {label.rsplit(".", 1)[-1] for label in settings.TENANT_APPS}
    for app in project_apps():
        for leaf in loader.graph.leaf_nodes(app):
            migration = loader.get_migration(*leaf)
            parents = [dep for dep in migration.dependencies if dep[0] == app]
            if not parents:
                continue
            parent_state = loader.project_state(parents[0])
            touched = {name for op in migration.operations if (name := _touched(op))}
            known = tuple(sorted(name for name in touched if (app, name) in parent_state.models))
            if known:
                yield Case(
                    app=app,
                    leaf=leaf,
                    parent=parents[0],
                    models=known,
                    shared=app in shared and app not in tenant,
                )


CASES = list(_cases())


# --- a row for any model, as the old code would write it --------------------------------------


class CannotBuildError(Exception):
    """The filler has no value for a required field (a limit of this test, not a finding)."""


# Checked in order: subclasses (EmailField, DateTimeField) before their bases.
_VALUES: tuple[tuple[type[models.Field[Any, Any]], Any], ...] = (
    (models.BooleanField, lambda salt: False),
    (models.IntegerField, lambda salt: 1),
    (models.DecimalField, lambda salt: decimal.Decimal(1)),
    (models.FloatField, lambda salt: 1.0),
    (models.DateTimeField, lambda salt: timezone.now()),
    (models.DateField, lambda salt: datetime.date(2026, 1, 1)),
    (models.TimeField, lambda salt: datetime.time(9, 0)),
    (models.DurationField, lambda salt: datetime.timedelta(minutes=5)),
    (models.JSONField, lambda salt: {}),
    (models.BinaryField, lambda salt: b""),
    (models.GenericIPAddressField, lambda salt: "127.0.0.1"),
    (models.UUIDField, lambda salt: uuid.UUID(int=salt)),
    (models.EmailField, lambda salt: f"expand-{salt}@example.com"),
)


def _value(field: models.Field[Any, Any], salt: int) -> Any:
    if field.choices:
        return next(iter(field.flatchoices))[0]
    for field_class, make in _VALUES:
        if isinstance(field, field_class):
            return make(salt)
    if isinstance(field, models.CharField | models.TextField):
        text = f"expand-{salt}"
        return text[: field.max_length] if field.max_length else text
    raise CannotBuildError(
        f"no value for {field.model.__name__}.{field.name} ({type(field).__name__})"
    )


def _needs_value(field: models.Field[Any, Any]) -> bool:
    if field.primary_key and isinstance(field, models.AutoField):
        return False
    if field.generated:  # a GeneratedField: PostgreSQL computes it, an INSERT may not name it
        return False
    has_db_default = field.db_default is not models.NOT_PROVIDED
    return not (field.null or field.has_default() or has_db_default)


def _build(model: type[models.Model], salt: int, depth: int = 0) -> models.Model:
    if depth > 3:
        raise CannotBuildError(f"{model.__name__}: foreign keys nest too deep")
    values: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if isinstance(field, models.ForeignKey):
            if not _needs_value(field):
                continue
            related = field.related_model
            assert isinstance(related, type)
            existing = related._default_manager.order_by("pk").first()
            values[field.name] = existing or _build(related, salt + 1000, depth + 1)
        elif field.primary_key and isinstance(field, models.UUIDField):
            values[field.name] = uuid.UUID(int=salt)
        elif _needs_value(field):
            values[field.name] = _value(field, salt)
    instance = model(**values)
    instance.save()
    return instance


def _crud(model: type[models.Model], salt: int) -> None:
    """Create, read, update and delete one row with the old model, in the active schema."""
    instance = _build(model, salt)
    fetched = model._default_manager.get(pk=instance.pk)
    list(model._default_manager.all()[:5])
    fetched.save()  # an UPDATE of every column the old code knows
    column = next(field for field in model._meta.concrete_fields if not field.primary_key)
    model._default_manager.filter(pk=instance.pk).update(
        **{column.attname: getattr(fetched, column.attname)}
    )
    fetched.delete()


def _attempt(model: type[models.Model], salt: int) -> str | None:
    try:
        with transaction.atomic():
            _crud(model, salt)
    except CannotBuildError as limit:
        return f"filler: {limit}"
    except Exception as exc:  # any database error is the finding, reported with its model
        return f"{type(exc).__name__}: {exc}".strip()
    return None


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_old_models_work_on_migrated_and_unmigrated_schemas(
    case: Case, alpha: TenantWorld, beta: TenantWorld
) -> None:
    executor = MigrationExecutor(connection)
    old_apps = executor.loader.project_state(case.parent).apps
    migrated_schema = get_public_schema_name() if case.shared else alpha.tenant.schema_name
    parent_schema = get_public_schema_name() if case.shared else beta.tenant.schema_name

    migrated: dict[str, str | None] = {}
    connection.set_schema(migrated_schema)  # type: ignore[attr-defined]
    for name in case.models:
        migrated[name] = _attempt(old_apps.get_model(case.app, name), salt=1)

    connection.set_schema(parent_schema)  # type: ignore[attr-defined]
    executor = MigrationExecutor(connection)
    executor.migrate([case.parent])
    unmigrated: dict[str, str | None] = {}
    for name in case.models:
        # The same ids as in the migrated schema: the two tenants' rows collide, and stay apart.
        unmigrated[name] = _attempt(old_apps.get_model(case.app, name), salt=1)
    connection.set_schema_to_public()  # type: ignore[attr-defined]

    limits = {name: error for name, error in unmigrated.items() if error}
    findings = {name: error for name, error in migrated.items() if error and name not in limits}
    if findings and case.leaf not in REVIEWED:
        pytest.fail(
            f"{case.id} breaks the expand rule: the previous release's models fail on a schema "
            f"at {case.leaf[1]} (while the Job runs, old web pods serve migrated tenants): "
            + "; ".join(f"{name}: {error}" for name, error in findings.items())
            + ". Add the column with db_default= or null=True, or split the change "
            "(docs/operations.md, Migrations at scale)."
        )
    if limits and len(limits) == len(case.models):
        # Not a skip: a case the filler cannot exercise checks nothing, so teach the filler.
        pytest.fail(
            f"{case.id}: the filler could not build a row even in the parent's own schema, so "
            "nothing was checked: " + "; ".join(limits.values()) + " (extend _VALUES / _build)"
        )


def test_the_check_catches_a_column_old_code_cannot_insert_into(alpha: TenantWorld) -> None:
    """The check itself: a NOT NULL column without a database default (what ``AddField`` with a
    Python-side ``default=`` leaves behind) breaks the old model's INSERT; ``db_default`` does not."""
    from accounts.models import User

    old_user = MigrationLoader(None).project_state().apps.get_model("accounts", "User")
    table = User._meta.db_table
    connection.set_tenant(alpha.tenant)  # type: ignore[attr-defined]
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} ADD COLUMN expand_probe integer NOT NULL DEFAULT 0")
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN expand_probe DROP DEFAULT")
    error = _attempt(old_user, salt=7)
    assert error is not None
    assert 'null value in column "expand_probe"' in error
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} ALTER COLUMN expand_probe SET DEFAULT 1")
    assert _attempt(old_user, salt=7) is None
    connection.set_schema_to_public()  # type: ignore[attr-defined]
