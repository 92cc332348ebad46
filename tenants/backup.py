"""Per-tenant backup and restore: one tenant schema through pg_dump / pg_restore, plus the tenant's
registry entry (name, kind, plan, status, domains), so a dropped tenant comes back whole.

A backup is one tar file holding ``manifest.json`` and ``schema.dump`` (pg_dump's custom format,
so ``pg_restore --list`` can inspect it). Restores go back into the same deployment: tenant tables
keep foreign keys to ``public.django_content_type``, whose ids differ between databases.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import quote_schema_name, schema_exists, tenant_context

from apikit.errors import APIError
from apikit.tenancy import activate_public
from notify.services import sender_route_resync
from tenants.migration_state import schemas_behind
from tenants.models import Domain, Plan, Tenant
from tenants.pg_tools import find_pg_tool, libpq_env
from tenants.routing import routing_changed
from tenants.services import mrn_system_default, schema_name_for, tenant_host

ARCHIVE_FORMAT = "verdant-tenant-backup"
ARCHIVE_VERSION = 1
MANIFEST_NAME = "manifest.json"
DUMP_NAME = "schema.dump"
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


class BackupError(Exception):
    """A one-line, operator-facing reason a backup or restore did not happen."""


@dataclass(frozen=True)
class BackupResult:
    slug: str
    schema: str
    path: Path
    size_bytes: int
    seconds: float


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


def tenant_backup(*, slug: str, path: Path) -> BackupResult:
    """Write one tenant's schema and registry entry to ``path`` (replaced atomically)."""
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
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="verdant-backup-") as workdir:
        dump = Path(workdir) / DUMP_NAME
        _run_tool(
            "pg_dump",
            [
                "--format=custom",
                f"--schema={tenant.schema_name}",
                "--no-owner",
                "--no-privileges",
                f"--file={dump}",
            ],
        )
        partial = path.with_name(path.name + ".partial")
        with tarfile.open(partial, "w") as archive:
            payload = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST_NAME)
            info.size = len(payload)
            info.mtime = int(time.time())
            archive.addfile(info, io.BytesIO(payload))
            archive.add(dump, arcname=DUMP_NAME)
        partial.replace(path)
    return BackupResult(
        slug=tenant.slug,
        schema=tenant.schema_name,
        path=path,
        size_bytes=path.stat().st_size,
        seconds=time.perf_counter() - started,
    )


def read_manifest(path: Path) -> dict[str, Any]:
    """The backup's manifest, after checking the file is a backup this code can restore."""
    try:
        with tarfile.open(path, "r") as archive:
            names = set(archive.getnames())
            if not {MANIFEST_NAME, DUMP_NAME} <= names:
                raise BackupError(
                    ERR_NOT_A_BACKUP.format(path=path, reason="manifest or dump missing")
                )
            member = archive.extractfile(MANIFEST_NAME)
            if member is None:
                raise BackupError(ERR_NOT_A_BACKUP.format(path=path, reason="manifest unreadable"))
            manifest: dict[str, Any] = json.loads(member.read())
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise BackupError(ERR_NOT_A_BACKUP.format(path=path, reason=str(exc))) from None
    if manifest.get("format") != ARCHIVE_FORMAT or manifest.get("version") != ARCHIVE_VERSION:
        raise BackupError(ERR_NOT_A_BACKUP.format(path=path, reason="unknown format or version"))
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


def _dump_restore(*, path: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="verdant-restore-") as workdir:
        dump = Path(workdir) / DUMP_NAME
        with tarfile.open(path, "r") as archive:
            source = archive.extractfile(DUMP_NAME)
            if source is None:
                raise BackupError(ERR_NOT_A_BACKUP.format(path=path, reason="dump unreadable"))
            with dump.open("wb") as target:
                shutil.copyfileobj(source, target)
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
        _dump_restore(path=path)
        if existing is None:
            created = _tenant_register(slug=slug, plan=plan)
        tenant = existing or created
        if tenant is None:  # unreachable: one of the two branches above ran
            raise BackupError(ERR_NO_TENANT.format(slug=slug))
        # An older backup meets newer code: bring the schema to the latest migration before the
        # tenant is routable again.
        migrated = bool(schemas_behind([schema]))
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
