"""The contract half of expand/contract (docs/operations.md, "Migrations at scale"): a migration that
drops or renames what the previous release's code still reads may not ship in the release whose
code stops reading it — old web pods serve every tenant while the migration Job runs.

"This release" is every migration that is not an ancestor of (or equal to) the app's entry in
tenants/migration_release.toml, which records what the last release shipped and is bumped when a
release is cut. A contract operation in one of those migrations is reported unless the file's
``[reviewed]`` table names the migration with the reason it is safe (typically: the code stopped
using the column a release earlier). tests/tenants/test_migration_contract.py runs this check.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.apps import apps as django_apps
from django.db import connection, models
from django.db.migrations import operations
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations.base import Operation

RELEASE_FILE = Path(__file__).resolve().parent / "migration_release.toml"
ROOT = RELEASE_FILE.parent.parent

Node = tuple[str, str]

_ALWAYS_CONTRACT: dict[type[Operation], str] = {
    operations.RemoveField: "drops a column",
    operations.DeleteModel: "drops a table",
    operations.RenameField: "renames a column",
    operations.RenameModel: "renames a table",
    operations.AlterModelTable: "renames a table",
}
# Raw SQL that drops, renames or tightens what old code uses.
_CONTRACT_SQL = re.compile(
    r"\bDROP\s+(COLUMN|TABLE|VIEW)\b|\bRENAME\s+(COLUMN|TO)\b|\bSET\s+NOT\s+NULL\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Release:
    released: dict[str, str]
    reviewed: dict[str, str]


@dataclass(frozen=True)
class Finding:
    migration: Node
    operation: str
    reason: str

    def __str__(self) -> str:
        return f"{self.migration[0]}.{self.migration[1]}: {self.operation} {self.reason}"


def project_apps() -> list[str]:
    """Labels of the project's own apps (not third-party, not test-only)."""
    labels = []
    for config in django_apps.get_app_configs():
        path = Path(config.path).resolve()
        if ROOT in path.parents and ".venv" not in path.parts and "tests" not in path.parts:
            labels.append(config.label)
    return labels


def release_marker(path: Path = RELEASE_FILE) -> Release:
    data = tomllib.loads(path.read_text())
    return Release(
        released={str(k): str(v) for k, v in data.get("released", {}).items()},
        reviewed={str(k): str(v) for k, v in data.get("reviewed", {}).items()},
    )


def unreleased_migrations(
    *, loader: MigrationLoader, release: Release, apps: Iterable[str]
) -> list[Node]:
    """Migrations of ``apps`` that the last release did not ship, in dependency order."""
    shipped: set[Node] = set()
    for app, name in release.released.items():
        if (app, name) not in loader.graph.nodes:
            raise ValueError(
                f"{RELEASE_FILE.name} names {app}.{name}, which does not exist: "
                "a migration was renamed or squashed after it was released?"
            )
        shipped.update(loader.graph.forwards_plan((app, name)))
    wanted = set(apps)
    ordered: list[Node] = []
    for leaf in loader.graph.leaf_nodes():
        for node in loader.graph.forwards_plan(leaf):
            if node[0] in wanted and node not in shipped and node not in ordered:
                ordered.append(node)
    return ordered


def _field_change(loader: MigrationLoader, node: Node, op: operations.AlterField) -> str | None:
    before = loader.project_state(node, at_end=False)
    model_key = (node[0], op.model_name_lower)
    if model_key not in before.models:
        return None
    old: Any = before.models[model_key].fields.get(op.name)
    new: Any = op.field
    if old is None:
        return None
    if old.null and not new.null and new.db_default is models.NOT_PROVIDED:
        return "makes a column NOT NULL without a database default"
    if old.db_column != new.db_column:
        return "renames a column (db_column)"
    if old.db_type(connection) != new.db_type(connection):
        return f"changes a column's type ({old.db_type(connection)} -> {new.db_type(connection)})"
    return None


def contract_findings(*, loader: MigrationLoader, node: Node) -> list[Finding]:
    findings = []
    for op in loader.get_migration(*node).operations:
        name = type(op).__name__
        reason: str | None = None
        for kind, description in _ALWAYS_CONTRACT.items():
            if isinstance(op, kind):
                reason = description
        if isinstance(op, operations.AlterField):
            reason = _field_change(loader, node, op)
        if isinstance(op, operations.RunSQL):
            sql = op.sql if isinstance(op.sql, str) else " ".join(map(str, op.sql))
            if _CONTRACT_SQL.search(sql):
                reason = "runs SQL that drops, renames or sets NOT NULL"
        if reason:
            findings.append(Finding(migration=node, operation=name, reason=reason))
    return findings


def unreviewed_contract_findings(
    *, loader: MigrationLoader, release: Release, apps: Iterable[str]
) -> list[Finding]:
    found = []
    for node in unreleased_migrations(loader=loader, release=release, apps=apps):
        if f"{node[0]}.{node[1]}" in release.reviewed:
            continue
        found.extend(contract_findings(loader=loader, node=node))
    return found
