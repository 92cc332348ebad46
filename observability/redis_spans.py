"""A CLIENT span for every Redis command and pipeline redis-py sends, in place of
opentelemetry-instrumentation-redis.

The contrib instrumentation, for each command, checks the suppression context, formats the
arguments, rebuilds the connection attributes from the pool's keyword arguments and sets seven
attributes one call at a time; on a list request that was a third of tracing's CPU in the main
thread for one throttle call (docs/benchmarks.md), and tracing's budget is 10 % of a request.
This module wraps ``redis.Redis.execute_command``, ``Pipeline.execute`` and
``Pipeline.immediate_execute_command`` (the synchronous client: Verdant has no asyncio or cluster
clients) and:

* does nothing unless the current span records, as query spans (observability/query_spans.py):
  with the parent-based sampler a child of an unsampled (or absent) span is never sampled, and
  commands outside any request or task span (a worker polling the broker between tasks, cache
  reads at start-up) would each start a trace of their own;
* writes the contrib instrumentation's attributes under the same names: ``db.system``,
  ``db.statement`` (the command with its arguments as ``?``: values and keys can hold personal
  data; at most 1,000 characters), ``db.redis.args_length`` or ``db.redis.pipeline_length``,
  ``db.redis.database_index``, ``net.peer.name``, ``net.peer.port``, ``net.transport``; the
  connection's share is computed once per connection pool;
* names the span after the command (``EVALSHA``), or the pipeline's commands joined by spaces;
* records a failing command's exception on its span; a pipeline's ``WatchError`` (the
  transaction's optimistic lock lost, which the caller retries) leaves the status unset.

Installed by ``tracing.configure_tracing``; nothing is wrapped when tracing is off.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry import trace
from redis.exceptions import WatchError

from observability.leaf_spans import LeafSpan

_TRACER_NAME = "verdant.redis"
MAX_STATEMENT = 1000
_TOO_LONG_MARK = "..."
_WRAPPED_MARK = "__verdant_redis_span__"

_installed = False
# The API's proxy until install() runs with the real provider in place.
_tracer: trace.Tracer = trace.get_tracer(_TRACER_NAME)


def installed() -> bool:
    return _installed


def install() -> None:
    """Wrap redis-py's client classes (idempotent)."""
    global _installed, _tracer
    from redis.client import Pipeline, Redis

    _tracer = trace.get_tracer(_TRACER_NAME)
    _wrap(Redis, "execute_command", _traced_command)
    _wrap(Pipeline, "immediate_execute_command", _traced_command)
    _wrap(Pipeline, "execute", _traced_pipeline)
    _installed = True


def _wrap(cls: type, name: str, tracer_of: Callable[[Callable[..., Any]], Any]) -> None:
    current = cls.__dict__[name]
    if getattr(current, _WRAPPED_MARK, False):
        return
    wrapped = functools.wraps(current)(tracer_of(current))
    setattr(wrapped, _WRAPPED_MARK, True)
    setattr(cls, name, wrapped)


def statement(args: Sequence[Any]) -> str:
    """``EVALSHA ? ? ?``: the command name and a placeholder per argument."""
    if not args:
        return ""
    text = " ".join([str(args[0]), *("?" * (len(args) - 1))])
    if len(text) > MAX_STATEMENT:
        text = text[: MAX_STATEMENT - len(_TOO_LONG_MARK)] + _TOO_LONG_MARK
    return text


def connection_attributes(client: Any) -> dict[str, Any]:
    """db.system, database index and peer of the client's pool (cached on the pool)."""
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return {"db.system": "redis"}
    cached: dict[str, Any] | None = getattr(pool, "_verdant_span_attributes", None)
    if cached is not None:
        return cached
    kwargs = getattr(pool, "connection_kwargs", {}) or {}
    attributes: dict[str, Any] = {
        "db.system": "redis",
        "db.redis.database_index": kwargs.get("db") or 0,
    }
    if "path" in kwargs:
        attributes["net.peer.name"] = str(kwargs.get("path", ""))
        attributes["net.transport"] = "other"
    else:
        attributes["net.peer.name"] = str(kwargs.get("host", "localhost"))
        attributes["net.peer.port"] = kwargs.get("port", 6379)
        attributes["net.transport"] = "ip_tcp"
    pool._verdant_span_attributes = attributes
    return attributes


def _traced_command(execute_command: Callable[..., Any]) -> Callable[..., Any]:
    def traced(self: Any, *args: Any, **options: Any) -> Any:
        if not trace.get_current_span().is_recording():
            return execute_command(self, *args, **options)
        attributes = {
            "db.statement": statement(args),
            "db.redis.args_length": len(args),
            **connection_attributes(self),
        }
        name = str(args[0]) if args and args[0] else str(attributes["db.redis.database_index"])
        with LeafSpan(_tracer, name, attributes):
            return execute_command(self, *args, **options)

    return traced


def _traced_pipeline(execute: Callable[..., Any]) -> Callable[..., Any]:
    def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not trace.get_current_span().is_recording():
            return execute(self, *args, **kwargs)
        # Pipeline.command_stack holds (args, options) pairs.
        commands = [entry[0] for entry in getattr(self, "command_stack", ())]
        attributes = {
            "db.statement": "\n".join(statement(command) for command in commands),
            "db.redis.pipeline_length": len(commands),
            **connection_attributes(self),
        }
        name = " ".join(str(command[0]) for command in commands if command) or "redis"
        lost_watch: WatchError | None = None
        with LeafSpan(_tracer, name, attributes):
            try:
                result = execute(self, *args, **kwargs)
            except WatchError as error:
                lost_watch = error
        if lost_watch is not None:
            raise lost_watch
        return result

    return traced
