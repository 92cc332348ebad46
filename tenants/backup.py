"""Per-tenant backup and restore: one tenant schema plus the tenant's registry entry (name, kind,
plan, status, domains), so a dropped tenant comes back whole.

A backup is one tar file holding ``manifest.json`` and the schema, in one of two methods:

- ``copy`` (the default whenever the schema matches the template: same applied migrations, same
  tables and columns): ``schema.sql``, the template's stored DDL script (the one provisioning
  replays), and one ``COPY`` text file per table under ``data/`` (tenants.schema_copy). It reads
  only this schema's catalog rows, so its cost does not grow with the number of other tenants.
- ``pg_dump``: ``schema.dump``, ``pg_dump --schema`` in its custom format (``pg_restore --list``
  inspects it). Exact for any schema, but pg_dump reads the whole catalog first: seconds per
  tenant at thousands of tenants. Used for a schema that differs from the template (behind on
  migrations, or changed by hand) and on request; version-1 files are all of this kind.

Restores go back into the same deployment: tenant tables keep foreign keys to
``public.django_content_type``, whose ids differ between databases.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import quote_schema_name, schema_exists, tenant_context

from apikit.errors import APIError
from apikit.tenancy import activate_public
from notify.services import sender_route_resync
from tenants.migration_state import expected_migrations, schemas_behind
from tenants.models import Domain, Plan, Tenant
from tenants.pg_tools import find_pg_tool, libpq_env, pg_connection
from tenants.routing import routing_changed
from tenants.schema_copy import (
    CopyRefusedError,
    SchemaMismatchError,
    SchemaRows,
    migration_names,
    migration_records,
    schema_rows_dump,
    schema_rows_load,
    structure_signature,
)
from tenants.services import mrn_system_default, schema_name_for, tenant_host
from tenants.template_script import rename_schema, template_script

ARCHIVE_FORMAT = "verdant-tenant-backup"
ARCHIVE_VERSION = 2
READABLE_VERSIONS = frozenset({1, 2})
MANIFEST_NAME = "manifest.json"
DUMP_NAME = "schema.dump"
DDL_NAME = "schema.sql"
DATA_DIR = "data"
METHOD_COPY = "copy"
METHOD_PG_DUMP = "pg_dump"
METHODS = ("auto", METHOD_COPY, METHOD_PG_DUMP)
DATA_FILE = re.compile(r"^\d{4}\.copy$")
# A data-heavy tenant's COPY text shrinks several-fold; level 6 is zlib's speed/size default.
GZIP_LEVEL = 6
# Where PostgreSQL client binaries live, newest major version first (as settings/devstack.py looks
# for the server binaries); PATH is searched after these.
# Suffix for the live schema while --replace restores over it; removed once the restore succeeds.
ASIDE_SUFFIX = "__pre_restore"
PG_TOOL_TIMEOUT_SECONDS = 3600

ERR_NO_TENANT = "no tenant {slug!r}"
ERR_TOOL_MISSING = (
    "{tool} not found: install the PostgreSQL client (Debian: apt-get install postgresql-client) "
    "or set PG_BIN_DIR to the directory that holds it"
)
ERR_NOT_A_BACKUP = "{path} is not a Verdant tenant backup ({reason})"
ERR_WRONG_TENANT = "{path} holds tenant {found!r}, not {slug!r}"
ERR_TENANT_EXISTS = (
    "tenant {slug!r} exists; re-run with --replace to overwrite its data with the backup"
)
ERR_ORPHAN_SCHEMA = "schema {schema!r} exists without a tenant row; drop it first"
ERR_DOMAIN_TAKEN = "domain {domain!r} belongs to tenant {owner!r}"
ERR_ASIDE_EXISTS = "schema {schema!r} is left over from an earlier restore; inspect and drop it"
ERR_TOOL_FAILED = "{tool} failed (exit {code}): {reason}"
ERR_COPY_REFUSED = "cannot back up {slug!r} by copy: {reason} (use --method pg_dump)"
ERR_COPY_FAILED = "restoring the rows failed: {reason}"
NOT_LIKE_TEMPLATE_MIGRATIONS = "its applied migrations differ from the template's"
NOT_LIKE_TEMPLATE_COLUMNS = "its tables or columns differ from the template's"
NO_TEMPLATE_SCRIPT = "the template's DDL script is unavailable (pg_dump missing or failing)"
TEMPLATE_CHANGED = "the template was migrated during the backup"
ERR_UNKNOWN_METHOD = "unknown backup method {method!r} (one of {methods})"


class BackupError(Exception):
    """A one-line, operator-facing reason a backup or restore did not happen."""


@dataclass(frozen=True)
class BackupResult:
    slug: str
    schema: str
    path: Path
    size_bytes: int
    seconds: float
    method: str = METHOD_PG_DUMP
    # Why the copy method was not used ("" when it was, or pg_dump was asked for).
    method_reason: str = ""


@dataclass(frozen=True)
class RestoreResult:
    tenant: Tenant
    replaced: bool
    migrated: bool
    seconds: float
    # Why the restored SMS sender could not take its number back ("" when it did, or has none).
    sender_route_problem: str = ""


def _require_tool(name: str) -> Path:
    tool = find_pg_tool(name)
    if tool is None:
        raise BackupError(ERR_TOOL_MISSING.format(tool=name))
    return tool


def _run_tool(tool: str, args: list[str]) -> None:
    executable = _require_tool(tool)
    result = subprocess.run(  # noqa: S603 (fixed executable, arguments built here)
        [str(executable), *args],
        env=libpq_env(),
        capture_output=True,
        text=True,
        timeout=PG_TOOL_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else "no error output"
        raise BackupError(ERR_TOOL_FAILED.format(tool=tool, code=result.returncode, reason=reason))


def _get_tenant(slug: str) -> Tenant:
    tenant = Tenant.objects.filter(slug=slug, is_template=False).select_related("plan").first()
    if tenant is None:
        raise BackupError(ERR_NO_TENANT.format(slug=slug))
    return tenant


def _template_records(conn: psycopg.Connection[Any]) -> frozenset[tuple[str, str, str]]:
    with conn.cursor() as cursor:
        return migration_records(cursor, settings.TENANT_TEMPLATE_SCHEMA)


def _copy_refusal(
    cursor: psycopg.Cursor[Any], *, schema: str, script_records: frozenset[tuple[str, str, str]]
) -> str:
    """Why ``schema`` cannot be backed up by copy with the template script made for
    ``script_records`` ("" when it can), read in the dump's own snapshot: the schema must have
    the template's migrations, tables and columns, and the template must still be the one the
    script was made from (a deploy migrating it meanwhile sends the backup to pg_dump)."""
    template = settings.TENANT_TEMPLATE_SCHEMA
    if migration_records(cursor, template) != script_records:
        return TEMPLATE_CHANGED
    if migration_names(cursor, schema) != {(app, name) for app, name, _ in script_records}:
        return NOT_LIKE_TEMPLATE_MIGRATIONS
    if structure_signature(cursor, schema) != structure_signature(cursor, template):
        return NOT_LIKE_TEMPLATE_COLUMNS
    return ""


def _write_archive(path: Path, manifest: dict[str, Any], files: dict[str, Path]) -> None:
    """``manifest`` and ``files`` (archive name -> file) into ``path``, renamed into place when
    complete."""
    partial = path.with_name(path.name + ".partial")
    # A tenant's patient data: readable by the backup's owner only, whatever the umask (and a
    # .partial left by an interrupted run keeps its old mode, hence the chmod).
    partial.touch(mode=0o600)
    partial.chmod(0o600)
    with tarfile.open(partial, "w:gz", compresslevel=GZIP_LEVEL) as archive:
        payload = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST_NAME)
        info.size = len(payload)
        info.mtime = int(time.time())
        archive.addfile(info, io.BytesIO(payload))
        for name, file in files.items():
            archive.add(file, arcname=name)
    partial.replace(path)


def _backup_by_copy(*, schema: str, workdir: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    """The copy method's files; raises CopyRefusedError (nothing written to the target) when the
    schema does not fit the template's script."""
    with pg_connection(application_name="verdant-backup") as conn:
        # The template as of the script, read before and after fetching it: equal means the
        # script is the one for these migrations (it is keyed by them).
        records = _template_records(conn)
        script = template_script()
        if script is None:
            raise CopyRefusedError(NO_TEMPLATE_SCRIPT)
        if _template_records(conn) != records:
            raise CopyRefusedError(TEMPLATE_CHANGED)
        ddl = workdir / DDL_NAME
        ddl.write_text(script)
        data = workdir / DATA_DIR
        data.mkdir()
        rows = schema_rows_dump(
            conn,
            schema=schema,
            directory=data,
            refusal=lambda cursor: _copy_refusal(cursor, schema=schema, script_records=records),
        )
    manifest["ddl_schema"] = settings.TENANT_TEMPLATE_SCHEMA
    manifest["rows"] = rows.as_manifest()
    return {
        DDL_NAME: ddl,
        **{f"{DATA_DIR}/{table.file}": data / table.file for table in rows.tables},
    }


def _backup_by_pg_dump(*, schema: str, workdir: Path) -> dict[str, Path]:
    dump = workdir / DUMP_NAME
    _run_tool(
        "pg_dump",
        [
            "--format=custom",
            f"--schema={schema}",
            "--no-owner",
            "--no-privileges",
            f"--file={dump}",
        ],
    )
    return {DUMP_NAME: dump}


def tenant_backup(*, slug: str, path: Path, method: str = "auto") -> BackupResult:
    """Write one tenant's schema and registry entry to ``path`` (replaced atomically).

    ``method``: ``copy``, ``pg_dump``, or ``auto`` (copy when the schema matches the template,
    else pg_dump; the result says which and why)."""
    started = time.perf_counter()
    activate_public()
    tenant = _get_tenant(slug)
    manifest: dict[str, Any] = {
        "format": ARCHIVE_FORMAT,
        "version": ARCHIVE_VERSION,
        "created_at": timezone.now().isoformat(),
        "slug": tenant.slug,
        "schema": tenant.schema_name,
        "name": tenant.name,
        "kind": tenant.kind,
        "plan": tenant.plan.name,
        "status": tenant.status,
        "mrn_system": tenant.mrn_system,
        "domains": [
            {"domain": domain.domain, "is_primary": domain.is_primary}
            for domain in Domain.objects.filter(tenant=tenant).order_by("domain")
        ],
    }
    if method not in METHODS:
        raise BackupError(ERR_UNKNOWN_METHOD.format(method=method, methods=", ".join(METHODS)))
    reason = ""
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="verdant-backup-") as workdir:
        files: dict[str, Path] | None = None
        if method != METHOD_PG_DUMP:
            try:
                files = _backup_by_copy(
                    schema=tenant.schema_name, workdir=Path(workdir), manifest=manifest
                )
            except CopyRefusedError as refused:
                reason = str(refused)
                if method == METHOD_COPY:
                    raise BackupError(ERR_COPY_REFUSED.format(slug=slug, reason=reason)) from None
        used = METHOD_COPY if files is not None else METHOD_PG_DUMP
        if files is None:
            files = _backup_by_pg_dump(schema=tenant.schema_name, workdir=Path(workdir))
        manifest["method"] = used
        _write_archive(path, manifest, files)
    return BackupResult(
        slug=tenant.slug,
        schema=tenant.schema_name,
        path=path,
        size_bytes=path.stat().st_size,
        seconds=time.perf_counter() - started,
        method=used,
        method_reason=reason,
    )


def _required_members(manifest: dict[str, Any]) -> set[str]:
    """The archive members a manifest's method needs; raises ValueError on a malformed one."""
    if manifest.get("method", METHOD_PG_DUMP) == METHOD_PG_DUMP:
        return {DUMP_NAME}
    if manifest.get("method") != METHOD_COPY or not isinstance(manifest.get("ddl_schema"), str):
        raise ValueError("unknown method")
    rows = SchemaRows.from_manifest(manifest["rows"])
    if not all(DATA_FILE.fullmatch(table.file) for table in rows.tables):
        raise ValueError("bad data file name")
    return {DDL_NAME, *(f"{DATA_DIR}/{table.file}" for table in rows.tables)}


def read_manifest(path: Path) -> dict[str, Any]:
    """The backup's manifest, after checking the file is a backup this code can restore."""
    try:
        with tarfile.open(path, "r") as archive:
            names = set(archive.getnames())
            if MANIFEST_NAME not in names:
                raise BackupError(ERR_NOT_A_BACKUP.format(path=path, reason="manifest missing"))
            member = archive.extractfile(MANIFEST_NAME)
            if member is None:
                raise BackupError(ERR_NOT_A_BACKUP.format(path=path, reason="manifest unreadable"))
            manifest: dict[str, Any] = json.loads(member.read())
            if (
                not isinstance(manifest, dict)
                or manifest.get("format") != ARCHIVE_FORMAT
                or manifest.get("version") not in READABLE_VERSIONS
            ):
                raise BackupError(
                    ERR_NOT_A_BACKUP.format(path=path, reason="unknown format or version")
                )
            try:
                required = _required_members(manifest)
            except (KeyError, TypeError, ValueError, IndexError) as exc:
                raise BackupError(
                    ERR_NOT_A_BACKUP.format(path=path, reason=f"manifest malformed: {exc}")
                ) from None
            if not required <= names:
                raise BackupError(
                    ERR_NOT_A_BACKUP.format(path=path, reason="schema or data files missing")
                )
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise BackupError(ERR_NOT_A_BACKUP.format(path=path, reason=str(exc))) from None
    return manifest


def _execute(sql: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql)


def _domains_for(slug: str, manifest: dict[str, Any]) -> list[tuple[str, bool]]:
    """The primary host follows this deployment's BASE_DOMAIN; extra hosts come from the backup."""
    primary = tenant_host(slug)
    extra = [
        str(entry["domain"])
        for entry in manifest.get("domains", [])
        if not entry.get("is_primary") and entry.get("domain") != primary
    ]
    return [(primary, True), *((domain, False) for domain in extra)]


@dataclass(frozen=True)
class _RestorePlan:
    manifest: dict[str, Any]
    schema: str
    aside: str
    existing: Tenant | None
    domains: list[tuple[str, bool]]  # to create with a new tenant row; none when replacing


def _restore_plan(*, slug: str, path: Path, replace: bool) -> _RestorePlan:
    """Every refusal happens here, before anything is changed."""
    manifest = read_manifest(path)
    if manifest.get("slug") != slug:
        raise BackupError(ERR_WRONG_TENANT.format(path=path, found=manifest.get("slug"), slug=slug))
    schema = schema_name_for(slug)
    existing = Tenant.objects.filter(slug=slug).first()
    if existing is not None and existing.is_template:
        raise BackupError(ERR_NO_TENANT.format(slug=slug))
    if existing is not None and not replace:
        raise BackupError(ERR_TENANT_EXISTS.format(slug=slug))
    if existing is None and schema_exists(schema):
        raise BackupError(ERR_ORPHAN_SCHEMA.format(schema=schema))
    domains = _domains_for(slug, manifest) if existing is None else []
    for domain, _primary in domains:
        owner = Domain.objects.filter(domain=domain).select_related("tenant").first()
        if owner is not None:
            raise BackupError(ERR_DOMAIN_TAKEN.format(domain=domain, owner=owner.tenant.slug))
    aside = schema + ASIDE_SUFFIX
    if existing is not None and schema_exists(aside):
        raise BackupError(ERR_ASIDE_EXISTS.format(schema=aside))
    return _RestorePlan(
        manifest=manifest, schema=schema, aside=aside, existing=existing, domains=domains
    )


def _extract(path: Path, targets: dict[str, Path]) -> None:
    """The archive's members named in ``targets`` (archive name -> file), in one pass over the
    archive: looking members up by name reads a compressed archive through once to list them and
    again from its start to reach each one."""
    extracted: set[str] = set()
    with tarfile.open(path, "r") as archive:
        for member in archive:
            target = targets.get(member.name)
            source = archive.extractfile(member) if target is not None else None
            if target is None or source is None:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("wb") as out:
                shutil.copyfileobj(source, out)
            extracted.add(member.name)
    unreadable = sorted(targets.keys() - extracted)
    if unreadable:
        raise BackupError(ERR_NOT_A_BACKUP.format(path=path, reason=f"{unreadable[0]} unreadable"))


def _dump_restore(*, path: Path, manifest: dict[str, Any], schema: str) -> bool:
    """Restore the schema; True when it is behind the code's migrations afterwards."""
    if manifest.get("method", METHOD_PG_DUMP) == METHOD_COPY:
        applied = _copy_restore(path=path, manifest=manifest, schema=schema)
        return not expected_migrations() <= applied
    with tempfile.TemporaryDirectory(prefix="verdant-restore-") as workdir:
        dump = Path(workdir) / DUMP_NAME
        _extract(path, {DUMP_NAME: dump})
        # One transaction: a failed restore leaves no half-built schema behind.
        _run_tool(
            "pg_restore",
            [
                "--single-transaction",
                "--exit-on-error",
                "--no-owner",
                "--no-privileges",
                f"--dbname={connection.settings_dict['NAME']}",
                str(dump),
            ],
        )
    return bool(schemas_behind([schema]))


def _copy_restore(
    *, path: Path, manifest: dict[str, Any], schema: str
) -> frozenset[tuple[str, str]]:
    """The backup's DDL (the template's script as of the backup) renamed to ``schema``, then
    its rows, in one transaction of a connection of its own: a failure leaves nothing behind.
    Returns the migrations the restored schema has applied (read from it, not by scanning the
    catalog as ``schemas_behind`` does)."""
    rows = SchemaRows.from_manifest(manifest["rows"])
    with tempfile.TemporaryDirectory(prefix="verdant-restore-") as workdir:
        data = Path(workdir) / DATA_DIR
        script = Path(workdir) / DDL_NAME
        _extract(
            path,
            {
                DDL_NAME: script,
                **{f"{DATA_DIR}/{table.file}": data / table.file for table in rows.tables},
            },
        )
        ddl = rename_schema(
            script.read_text(encoding="utf-8"), source=manifest["ddl_schema"], target=schema
        )
        try:
            with pg_connection(application_name="verdant-restore") as conn, conn.transaction():
                # No parameters: one simple query, as provisioning replays the same script.
                conn.execute(ddl)
                schema_rows_load(conn, schema=schema, directory=data, rows=rows)
                with conn.cursor() as cursor:
                    applied = migration_names(cursor, schema)
        except (psycopg.Error, SchemaMismatchError) as exc:
            lines = [line for line in str(exc).strip().splitlines() if line.strip()]
            reason = lines[0] if lines else type(exc).__name__
            raise BackupError(ERR_COPY_FAILED.format(reason=reason)) from None
    return applied


def _tenant_register(*, slug: str, plan: _RestorePlan) -> Tenant:
    """The registry entry of a dropped tenant, from the backup's manifest."""
    manifest = plan.manifest
    with transaction.atomic():
        tenant_plan, _ = Plan.objects.get_or_create(name=manifest["plan"])
        created = Tenant.objects.create(
            slug=slug,
            schema_name=plan.schema,
            name=manifest["name"],
            kind=manifest["kind"],
            plan=tenant_plan,
            status=manifest["status"],
            # Backups made before issue 17 carry none: the rule provisioning applied then.
            mrn_system=manifest.get("mrn_system") or mrn_system_default(slug),
        )
        for domain, primary in plan.domains:
            Domain.objects.create(domain=domain, tenant=created, is_primary=primary)
    return created


def _restore_undo(*, plan: _RestorePlan, created: Tenant | None, set_aside: bool) -> None:
    """After a failed restore: drop what it made and put the live schema back."""
    activate_public()
    if created is not None:
        with transaction.atomic():
            Domain.objects.filter(tenant=created).delete()
            Tenant.objects.filter(pk=created.pk).delete()
    schema, aside = quote_schema_name(plan.schema), quote_schema_name(plan.aside)
    if schema_exists(plan.schema) and (set_aside or plan.existing is None):
        _execute(f"DROP SCHEMA {schema} CASCADE")
    if set_aside:
        _execute(f"ALTER SCHEMA {aside} RENAME TO {schema}")


def tenant_restore(*, slug: str, path: Path, replace: bool = False) -> RestoreResult:
    """Bring a tenant back from ``tenant_backup`` output.

    With no tenant ``slug`` (it was dropped) the schema and registry entry are recreated. With
    ``replace`` an existing tenant's schema is swapped for the backup's; the live schema is kept
    aside until the restore has succeeded and put back if it fails.
    """
    started = time.perf_counter()
    activate_public()
    plan = _restore_plan(slug=slug, path=path, replace=replace)
    existing, schema = plan.existing, plan.schema
    set_aside = existing is not None and schema_exists(schema)
    if set_aside:
        _execute(
            f"ALTER SCHEMA {quote_schema_name(schema)} RENAME TO {quote_schema_name(plan.aside)}"
        )
    created: Tenant | None = None
    try:
        behind = _dump_restore(path=path, manifest=plan.manifest, schema=schema)
        if existing is None:
            created = _tenant_register(slug=slug, plan=plan)
        tenant = existing or created
        if tenant is None:  # unreachable: one of the two branches above ran
            raise BackupError(ERR_NO_TENANT.format(slug=slug))
        # An older backup meets newer code: bring the schema to the latest migration before the
        # tenant is routable again.
        migrated = behind
        if migrated:
            call_command("migrate_schemas", schema_name=schema, interactive=False, verbosity=0)
            activate_public()
        with transaction.atomic():
            Tenant.objects.filter(pk=tenant.pk).update(ready=True)
            transaction.on_commit(routing_changed)
    except BaseException:
        _restore_undo(plan=plan, created=created, set_aside=set_aside)
        raise
    if set_aside:
        _execute(f"DROP SCHEMA {quote_schema_name(plan.aside)} CASCADE")
    tenant.refresh_from_db()
    return RestoreResult(
        tenant=tenant,
        replaced=existing is not None,
        migrated=migrated,
        seconds=time.perf_counter() - started,
        sender_route_problem=sender_route_restore(tenant),
    )


def sender_route_restore(tenant: Tenant) -> str:
    """The public table that routes SMS webhooks to a tenant is not in the tenant's backup: it
    is rebuilt from the restored sender. A number another tenant claimed meanwhile stays theirs;
    the restore still succeeds and says so."""
    try:
        with tenant_context(tenant):
            sender_route_resync(tenant_id=tenant.pk)
    except APIError as error:
        return str(error.detail)
    finally:
        activate_public()
    return ""
