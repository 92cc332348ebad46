"""Which migrations each schema has applied, compared with the code on disk and the template.

Every function here reads many schemas in one query, so checks stay cheap at thousands of tenants.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable

from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.utils import quote_schema_name

Migration = tuple[str, str]
Column = tuple[str, str, str]


def expected_migrations() -> frozenset[Migration]:
    """Every migration on disk. A fully migrated schema records all of them: the router skips the
    operations of apps that live in the other realm, but Django still records them as applied."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return frozenset(loader.graph.nodes)


def _schemas_with_migration_table(schemas: list[str]) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'django_migrations' AND table_schema = ANY(%s)",
            [schemas],
        )
        return [row[0] for row in cursor.fetchall()]


def applied_migrations(schemas: Iterable[str]) -> dict[str, frozenset[Migration]]:
    """Applied migrations per schema; a schema without a migration table maps to an empty set."""
    wanted = list(dict.fromkeys(schemas))
    result: dict[str, set[Migration]] = {schema: set() for schema in wanted}
    present = _schemas_with_migration_table(wanted) if wanted else []
    for start in range(0, len(present), 500):
        batch = present[start : start + 500]
        union = " UNION ALL ".join(
            # Schema names come from the tenant registry and are quoted: not user input.
            f"SELECT %s, app, name FROM {quote_schema_name(schema)}.django_migrations"  # noqa: S608
            for schema in batch
        )
        with connection.cursor() as cursor:
            cursor.execute(union, batch)
            for schema, app, name in cursor.fetchall():
                result[schema].add((app, name))
    return {schema: frozenset(applied) for schema, applied in result.items()}


def schemas_behind(schemas: Iterable[str]) -> list[str]:
    """The schemas that have not applied every migration on disk, in the order given."""
    expected = expected_migrations()
    applied = applied_migrations(schemas)
    return [schema for schema, done in applied.items() if not expected <= done]


def column_signatures(schemas: Iterable[str]) -> dict[str, frozenset[Column]]:
    """(table, column, type) triples per schema, to catch schemas whose tables differ."""
    wanted = list(dict.fromkeys(schemas))
    result: dict[str, set[Column]] = defaultdict(set)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema, table_name, column_name, data_type "
            "FROM information_schema.columns WHERE table_schema = ANY(%s)",
            [wanted],
        )
        for schema, table, column, data_type in cursor.fetchall():
            result[schema].add((table, column, data_type))
    return {schema: frozenset(result.get(schema, set())) for schema in wanted}


def drift_report(
    *,
    template_schema: str,
    tenant_schemas: list[str],
    batch_size: int = 200,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[str]]:
    """Schemas whose applied migrations or columns differ from the template's.

    Returns ``{schema: [reason, ...]}`` for every drifting schema (the template itself is checked
    against the migrations on disk). ``progress(done, total)`` is called after each batch.
    """
    expected = expected_migrations()
    template_applied = applied_migrations([template_schema])[template_schema]
    template_columns = column_signatures([template_schema])[template_schema]
    findings: dict[str, list[str]] = {}
    if not expected <= template_applied:
        missing = sorted(expected - template_applied)
        findings[template_schema] = [
            f"template is missing {len(missing)} migration(s): {_names(missing)}"
        ]
    total = len(tenant_schemas)
    for start in range(0, total, batch_size):
        batch = tenant_schemas[start : start + batch_size]
        applied = applied_migrations(batch)
        columns = column_signatures(batch)
        for schema in batch:
            reasons = []
            missing_here = template_applied - applied[schema]
            extra = applied[schema] - template_applied
            if missing_here:
                reasons.append(
                    f"missing {len(missing_here)} migration(s) the template has: {_names(missing_here)}"
                )
            if extra:
                reasons.append(f"has {len(extra)} migration(s) the template lacks: {_names(extra)}")
            if columns[schema] != template_columns:
                differing = sorted({t for t, _, _ in columns[schema] ^ template_columns})
                reasons.append(f"columns differ from the template in: {', '.join(differing[:5])}")
            if reasons:
                findings[schema] = reasons
        if progress is not None:
            progress(min(start + batch_size, total), total)
    return findings


def _names(migrations: Iterable[Migration], limit: int = 3) -> str:
    ordered = sorted(migrations)
    shown = ", ".join(f"{app}.{name}" for app, name in ordered[:limit])
    return shown + (f" and {len(ordered) - limit} more" if len(ordered) > limit else "")
