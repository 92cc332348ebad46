"""A CLIENT span for every SQL statement Django runs, from a Django execute wrapper, in place of
opentelemetry-instrumentation-psycopg.

The contrib instrumentation wraps every psycopg cursor and, for each statement, opens a span even
when nothing will record it, records two duration/row-count histograms, and sets network and
user attributes from the connection: on a list request that was a large share of tracing's CPU,
which has a budget of 10 % of a request. This wrapper:

* does nothing unless the current span records: a statement's span would be a child of it, and
  with the parent-based sampler a child of an unsampled (or absent) span is never sampled, so a
  sampled-out request pays one context lookup per statement. Statements outside any request or
  task span (start-up, management commands) are not traced;
* names the span after the statement's first keyword (``SELECT``, ``INSERT``...), as the contrib
  instrumentation did, and sets ``db.system``, ``db.name`` and ``db.statement`` (the SQL with its
  placeholders, cut at MAX_STATEMENT characters; parameters are patient data and never leave
  the process);
* records the exception on the span when the statement fails.

Installed by ``tracing.configure_tracing``: ``install()`` adds the wrapper to the connections this
thread already has, and the database backend (tenants/postgresql_backend/base.py) adds it to
every connection opened afterwards. Nothing is installed when tracing is off.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import trace

from observability.leaf_spans import LeafSpan

DB_SYSTEM = "postgresql"
_TRACER_NAME = "verdant.db"
_MAX_NAME = 32
# Provisioning replays a whole schema as one statement; a span attribute stays readable.
MAX_STATEMENT = 4096

_installed = False
# The API's proxy until install() runs with the real provider in place.
_tracer: trace.Tracer = trace.get_tracer(_TRACER_NAME)


def installed() -> bool:
    return _installed


def install() -> None:
    """From now on every Django connection of this process gets the wrapper."""
    global _installed, _tracer
    from django.db import connections

    _tracer = trace.get_tracer(_TRACER_NAME)
    _installed = True
    for connection in connections.all(initialized_only=True):
        add_to(connection)


def add_to(connection: Any) -> None:
    if query_span not in connection.execute_wrappers:
        connection.execute_wrappers.append(query_span)


def query_span(
    execute: Callable[..., Any], sql: Any, params: Any, many: bool, context: dict[str, Any]
) -> Any:
    if not trace.get_current_span().is_recording():
        return execute(sql, params, many, context)
    statement = sql if isinstance(sql, str) else str(sql)
    if len(statement) > MAX_STATEMENT:
        statement = statement[:MAX_STATEMENT] + "…"
    attributes = {
        "db.system": DB_SYSTEM,
        "db.name": str(context["connection"].settings_dict.get("NAME") or ""),
        "db.statement": statement,
    }
    with LeafSpan(_tracer, _operation(statement), attributes):
        return execute(sql, params, many, context)


def _operation(statement: str) -> str:
    words = statement.split(None, 1)
    return words[0].upper()[:_MAX_NAME] if words else "SQL"
