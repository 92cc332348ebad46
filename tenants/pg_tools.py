"""PostgreSQL's client tools (pg_dump, pg_restore) for backups and the template script: where to
find them, and the connection settings they get."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from django.db import connection

PG_SEARCH_ROOTS = (Path("/usr/lib/postgresql"), Path("/usr/local/pgsql"), Path("/opt/homebrew/opt"))


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


def libpq_env() -> dict[str, str]:
    """Connection settings for the client tools as libpq variables: the password never appears
    in a process listing."""
    db = connection.settings_dict
    env = dict(os.environ)
    for variable, value in (
        ("PGHOST", db.get("HOST")),
        ("PGPORT", db.get("PORT")),
        ("PGUSER", db.get("USER")),
        ("PGPASSWORD", db.get("PASSWORD")),
        ("PGDATABASE", db.get("NAME")),
        ("PGSSLMODE", (db.get("OPTIONS") or {}).get("sslmode")),
    ):
        if value:
            env[variable] = str(value)
    return env
