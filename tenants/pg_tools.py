"""PostgreSQL's client tools (pg_dump, pg_restore) for backups and the template script: where to
find them, and the connection settings they get; the same settings for a psycopg connection of a
backup's own (tenants.backup)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from django.db import connection
from psycopg.conninfo import make_conninfo

PG_SEARCH_ROOTS = (Path("/usr/lib/postgresql"), Path("/usr/local/pgsql"), Path("/opt/homebrew/opt"))
# libpq keyword -> DATABASES setting; then the OPTIONS that are libpq keywords themselves.
LIBPQ_SETTINGS = {
    "dbname": "NAME",
    "host": "HOST",
    "port": "PORT",
    "user": "USER",
    "password": "PASSWORD",
}
LIBPQ_OPTIONS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout")
# libpq keyword -> the environment variable the client tools read it from.
LIBPQ_ENV = {
    "dbname": "PGDATABASE",
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
}


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name)) or (0,)


def find_pg_tool(
    name: str,
    *,
    search_roots: tuple[Path, ...] = PG_SEARCH_ROOTS,
    path_env: str | None = None,
    bin_dir_env: str | None = None,
) -> Path | None:
    """The newest ``<root>/<major>/bin/<name>``, then PATH. PG_BIN_DIR, when set, is the only place
    searched, so an operator can pin the client that matches the server."""
    pinned = bin_dir_env if bin_dir_env is not None else os.environ.get("PG_BIN_DIR")
    if pinned:
        candidate = Path(pinned) / name
        return candidate if candidate.is_file() else None
    for root in search_roots:
        if root.is_dir():
            for version_dir in sorted(root.iterdir(), key=_version_key, reverse=True):
                candidate = version_dir / "bin" / name
                if candidate.is_file():
                    return candidate
    found = shutil.which(name, path=path_env if path_env is not None else os.environ.get("PATH"))
    return Path(found) if found else None


def libpq_params() -> dict[str, str]:
    """The default database's connection settings as libpq keywords: DATABASES' NAME, HOST,
    PORT, USER and PASSWORD, and the OPTIONS that are libpq's own (TLS, connect timeout)."""
    db = connection.settings_dict
    options = db.get("OPTIONS") or {}
    found = {keyword: db.get(setting) for keyword, setting in LIBPQ_SETTINGS.items()}
    found.update({keyword: options.get(keyword) for keyword in LIBPQ_OPTIONS})
    return {keyword: str(value) for keyword, value in found.items() if value not in (None, "")}


def libpq_env() -> dict[str, str]:
    """The same settings for the client tools as libpq variables: the password never appears
    in a process listing."""
    return {
        **os.environ,
        **{LIBPQ_ENV[keyword]: value for keyword, value in libpq_params().items()},
    }


@contextmanager
def pg_connection(*, application_name: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection of its own (not Django's), with the same settings: its snapshot and
    transaction belong to a backup or restore alone, as pg_dump's and pg_restore's do. In
    autocommit, so the only transaction is the one the caller opens (``BEGIN ISOLATION LEVEL
    ...`` or ``conn.transaction()``): psycopg would otherwise have begun one already, and a
    second BEGIN only warns."""
    conn = psycopg.connect(
        make_conninfo(**libpq_params(), application_name=application_name), autocommit=True
    )
    try:
        yield conn
    finally:
        conn.close()
