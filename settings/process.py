"""Which kind of Verdant process this is (web, worker, beat, migrate, ...): the PostgreSQL
``application_name`` of its connections, so an operator can tell in ``pg_stat_activity`` which
backend belongs to which process (issue 20, item 2)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import PurePath

# PostgreSQL truncates application_name at NAMEDATALEN - 1 bytes.
APPLICATION_NAME_MAX = 63
MIGRATE_COMMANDS = frozenset({"migrate", "migrate_schemas"})


def process_kind(*, argv: Sequence[str], environ: Mapping[str, str]) -> str:
    """``VERDANT_PROCESS`` when set (the Helm chart sets it per Deployment / Job), else derived
    from the entry point: gunicorn / runserver -> web, celery worker / beat, daphne / uvicorn ->
    realtime, manage.py migrate(_schemas) -> migrate, pytest -> test, other commands -> manage."""
    explicit = environ.get("VERDANT_PROCESS", "").strip()
    if explicit:
        return explicit
    program = PurePath(argv[0]).name if argv else ""
    args = list(argv[1:])
    if "gunicorn" in program:
        return "web"
    if "celery" in program:
        for kind in ("beat", "worker"):
            if kind in args:
                return kind
        return "celery"
    if program in {"daphne", "uvicorn"}:
        return "realtime"
    if "pytest" in (argv[0] if argv else ""):
        return "test"
    if program == "manage.py" or program == "django-admin":
        command = args[0] if args else ""
        if command in MIGRATE_COMMANDS:
            return "migrate"
        if command == "runserver":
            return "web"
        return "manage"
    return "verdant"


def application_name(*, argv: Sequence[str], environ: Mapping[str, str]) -> str:
    return f"verdant-{process_kind(argv=argv, environ=environ)}"[:APPLICATION_NAME_MAX]


def current_application_name() -> str:
    return application_name(argv=sys.argv, environ=os.environ)
