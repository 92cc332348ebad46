"""New tenant schemas from a replayed script of the template schema.

django-tenants' ``clone_schema`` rebuilds every table, index, constraint and trigger of the
template by introspecting the catalog on each call, inside PL/pgSQL: about 0.45 s per tenant in an
empty database and seconds once hundreds of schemas fill ``pg_class``. Instead the template is
dumped once (``pg_dump --schema``, the same statements a restore would run) and the dump, with the
schema renamed, is replayed for each new tenant: one round trip of plain DDL whose cost does not
grow with the number of tenants.

The script is executable SQL, run as the database owner, so it is stored only where writing it
already takes the database owner's credentials: a row of ``tenants.TemplateScript`` in the public
schema, keyed by the script format, the template's name and a fingerprint of the template's
applied migrations (and when each was applied). Every process (web, worker, a ``provision_tenant``
command) shares one dump, a migration that changes the template changes the key, and storing a new
script deletes the rows of every other key. It is never read from or written to Redis (or any
cache): anyone who can write to Redis could otherwise run SQL as the owner at the next
provisioning (issue 22, item 4). Without ``pg_dump`` (or if it fails) provisioning falls back to
``clone_schema`` and logs why: slower, never wrong.
"""

from __future__ import annotations

import hashlib
import logging
import re
import subprocess

from django.conf import settings
from django.db import connection, transaction
from django_tenants.clone import CloneSchema
from django_tenants.utils import quote_schema_name

from tenants.models import TemplateScript
from tenants.pg_tools import find_pg_tool, libpq_env

logger = logging.getLogger(__name__)

# Part of the stored script's key: bump it when the dump's options change, so old scripts are not
# reused.
SCRIPT_FORMAT = 2
DUMP_TIMEOUT_SECONDS = 120
# Session settings at the top of a dump (search_path '', statement_timeout 0 …) would outlive the
# replay on this connection; every statement in the dump is schema-qualified without them.
_SESSION_SETTING = re.compile(r"^(SET |SELECT pg_catalog\.set_config\()", re.IGNORECASE)


def template_fingerprint() -> str:
    """A digest of the template's applied migrations and when each was applied: it changes
    whenever its schema does, also when a template is built again from a migration edited in
    place (a development database, CI), which the names alone would not show."""
    template = quote_schema_name(settings.TENANT_TEMPLATE_SCHEMA)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT app, name, applied FROM {template}.django_migrations ORDER BY app, name"  # noqa: S608
        )
        rows = cursor.fetchall()
    digest = hashlib.sha256()
    for app, name, applied in rows:
        digest.update(f"{app}.{name}@{applied.isoformat()}\n".encode())
    return digest.hexdigest()[:32]


def script_key(fingerprint: str) -> str:
    """The ``TemplateScript`` key of the dump of the template with ``fingerprint``."""
    return f"v{SCRIPT_FORMAT}:{settings.TENANT_TEMPLATE_SCHEMA}:{fingerprint}"


def dump_template() -> str | None:
    """The template schema as replayable SQL (DDL and its bookkeeping rows), or None when
    ``pg_dump`` is missing or fails. Reads committed state: call it outside the transaction that
    migrated the template."""
    pg_dump = find_pg_tool("pg_dump")
    if pg_dump is None:
        logger.warning("pg_dump not found: new tenant schemas are cloned (slower)")
        return None
    completed = subprocess.run(  # noqa: S603  (fixed executable, arguments built here)
        [
            str(pg_dump),
            f"--schema={settings.TENANT_TEMPLATE_SCHEMA}",
            "--no-owner",
            "--no-privileges",
            # The bookkeeping rows as one multi-row INSERT per table, not one statement per row.
            "--rows-per-insert=1000",
        ],
        env=libpq_env(),
        capture_output=True,
        text=True,
        timeout=DUMP_TIMEOUT_SECONDS,
        check=False,
    )
    if completed.returncode != 0:
        lines = completed.stderr.strip().splitlines()
        logger.warning(
            "pg_dump of the template failed (%s): new tenant schemas are cloned (slower)",
            lines[-1] if lines else f"exit {completed.returncode}",
        )
        return None
    return "\n".join(
        line
        for line in completed.stdout.splitlines()
        # psql meta-commands (\restrict) and session settings are not part of the schema.
        if not line.startswith("\\") and not _SESSION_SETTING.match(line)
    )


def _store(key: str, script: str) -> None:
    """Store ``script`` under ``key`` and delete every other key's script, in the caller's
    transaction (a savepoint inside provisioning's). An upsert: two processes that missed at once
    both store the same dump, the second waiting for the first's transaction, neither failing."""
    with transaction.atomic():
        TemplateScript.objects.bulk_create(
            [TemplateScript(key=key, script=script)],
            update_conflicts=True,
            unique_fields=["key"],
            update_fields=["script", "stored_at"],
        )
        TemplateScript.objects.exclude(key=key).delete()


def template_script(*, refresh: bool = False) -> str | None:
    """The stored dump for the template as it is now, dumping and storing it on a miss (or when
    ``refresh``). Read from and written to the public schema's ``TemplateScript`` only."""
    key = script_key(template_fingerprint())
    script = (
        None
        if refresh
        else TemplateScript.objects.filter(key=key).values_list("script", flat=True).first()
    )
    if script is None:
        script = dump_template()
        if script is not None:
            _store(key, script)
    return script


def rename_schema(script: str, *, source: str, target: str) -> str:
    """``source`` as a whole identifier becomes ``target``. Both are plain lower-case identifiers
    (``tenants.services.schema_name_for``), so pg_dump never quotes them."""
    return re.sub(rf"\b{re.escape(source)}\b", target, script)


def schema_create_from_template(*, schema: str) -> str:
    """Create ``schema`` as a copy of the template inside the caller's transaction; returns the
    method used (``script`` or ``clone``)."""
    template = settings.TENANT_TEMPLATE_SCHEMA
    script = template_script()
    if script is None:
        CloneSchema().clone_schema(template, schema, "DATA")
        return "clone"
    with connection.cursor() as cursor:
        # No parameters: sent as one simple query, so the whole script is one round trip.
        cursor.execute(rename_schema(script, source=template, target=schema))
    return "script"
