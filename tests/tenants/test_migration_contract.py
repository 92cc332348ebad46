"""The contract lint (tenants.migration_contract): no migration of this release drops, renames or
tightens what the previous release's code still uses, unless reviewed in
tenants/migration_release.toml (docs/operations.md, "Migrations at scale")."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader

from tenants.migration_contract import (
    Release,
    contract_findings,
    project_apps,
    release_marker,
    unreleased_migrations,
    unreviewed_contract_findings,
)


def test_no_unreviewed_contract_operation_in_this_release() -> None:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    findings = unreviewed_contract_findings(
        loader=loader, release=release_marker(), apps=project_apps()
    )
    assert not findings, (
        "contract operations in migrations the last release did not ship — old web pods still "
        "use what they remove while the migration Job runs. Ship the code change first and the "
        "contract migration a release later, or add the migration to [reviewed] in "
        "tenants/migration_release.toml with the reason it is safe:\n"
        + "\n".join(f"  {finding}" for finding in findings)
    )


def test_the_marker_names_existing_migrations_ofproject_apps() -> None:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    release = release_marker()
    apps = set(project_apps())
    assert set(release.released) <= apps
    for app, name in release.released.items():
        assert (app, name) in loader.graph.nodes, f"{app}.{name}"


def test_a_migration_after_the_marker_is_this_release() -> None:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    release = Release(released={"clinical": "0005_remindersettings_versioned"}, reviewed={})
    fresh = unreleased_migrations(loader=loader, release=release, apps=["clinical"])
    # Every clinical migration after the marker, in order (later ones join as the app grows).
    assert fresh[0] == ("clinical", "0006_bulkexport")
    assert ("clinical", "0005_remindersettings_versioned") not in fresh
    assert {app for app, _ in fresh} == {"clinical"}
    # An app with no entry has shipped nothing: every migration is new.
    assert ("farms", "0001_initial") in unreleased_migrations(
        loader=loader, release=Release(released={}, reviewed={}), apps=["farms"]
    )


def test_a_stale_marker_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "release.toml"
    marker.write_text('[released]\nclinical = "0099_gone"\n')
    with pytest.raises(ValueError, match=r"clinical\.0099_gone"):
        unreleased_migrations(
            loader=MigrationLoader(None, ignore_no_migrations=True),
            release=release_marker(marker),
            apps=["clinical"],
        )


class _Loader(MigrationLoader):
    """The real loader with one extra migration on top of clinical's newest: the operations
    under test, checked exactly as a real migration would be."""

    def __init__(self, *ops: migrations.operations.base.Operation) -> None:
        self.probe_operations = list(ops)
        super().__init__(None, ignore_no_migrations=True)

    def load_disk(self) -> None:
        super().load_disk()
        parent = max(name for app, name in self.disk_migrations if app == "clinical")
        probe = type(
            "Migration",
            (migrations.Migration,),
            {"dependencies": [("clinical", parent)], "operations": self.probe_operations},
        )
        self.disk_migrations[("clinical", "9999_probe")] = probe("9999_probe", "clinical")


@pytest.mark.parametrize(
    ("operation", "reason"),
    [
        (migrations.RemoveField("patient", "given_name"), "drops a column"),
        (migrations.DeleteModel("BulkExport"), "drops a table"),
        (migrations.RenameField("patient", "given_name", "first_name"), "renames a column"),
        (migrations.RenameModel("BulkExport", "Export"), "renames a table"),
        (migrations.AlterModelTable("bulkexport", "exports"), "renames a table"),
        (
            migrations.AlterField("patient", "phone", models.TextField()),
            "changes a column's type",
        ),
        (
            migrations.AlterField(
                "patient",
                "assigned_clinician",
                models.ForeignKey(on_delete=models.PROTECT, to="accounts.user"),
            ),
            "NOT NULL without a database default",
        ),
        (
            migrations.RunSQL("ALTER TABLE clinical_patient DROP COLUMN given_name"),
            "runs SQL that drops",
        ),
        (
            migrations.RunSQL("ALTER TABLE clinical_patient ALTER COLUMN x SET NOT NULL"),
            "sets NOT NULL",
        ),
    ],
)
def test_each_contract_operation_is_flagged(
    operation: migrations.operations.base.Operation, reason: str
) -> None:
    loader = _Loader(operation)
    findings = contract_findings(loader=loader, node=("clinical", "9999_probe"))
    assert len(findings) == 1
    assert reason in findings[0].reason
    release = release_marker()
    assert unreviewed_contract_findings(loader=loader, release=release, apps=["clinical"])
    reviewed = Release(
        released=release.released, reviewed={"clinical.9999_probe": "code stopped in 2026.11"}
    )
    assert not unreviewed_contract_findings(loader=loader, release=reviewed, apps=["clinical"])


def test_expand_operations_pass() -> None:
    loader = _Loader(
        migrations.AddField("patient", "nickname", models.TextField(null=True)),
        migrations.AddField("patient", "tier", models.IntegerField(db_default=1, default=1)),
        migrations.RunSQL("CREATE INDEX IF NOT EXISTS probe ON clinical_patient (id)"),
    )
    assert contract_findings(loader=loader, node=("clinical", "9999_probe")) == []
