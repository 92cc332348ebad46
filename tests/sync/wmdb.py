"""Drive the real WatermelonDB client (tests/sync/wmdb_client/device.js) from pytest.

``WmdbDevice`` is one field device: a long-lived ``node`` process holding an in-memory
WatermelonDB database, spoken to with one JSON line per command (README.md beside device.js).
``ServerClient`` talks to the same live server with ``requests`` (REST edits, the native pull),
and ``assert_device_matches_server`` checks that the device holds exactly what the server says
its user may see, in the wire types of ``wmdb_client/schema.json``.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests

CLIENT_DIR = Path(__file__).resolve().parent / "wmdb_client"
DEVICE_JS = CLIENT_DIR / "device.js"
SCHEMA: dict[str, Any] = json.loads((CLIENT_DIR / "schema.json").read_text())
DEFAULT_TIMEOUT = 60.0


class DeviceError(RuntimeError):
    """A command answered ``{"ok": false}`` (``reply`` holds the answer) or the process failed."""

    def __init__(self, message: str, reply: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.reply = reply or {}


def node_executable() -> str:
    node = shutil.which("node")
    if node is None:
        raise DeviceError("node is not installed: install Node 20 (apt-get install nodejs npm)")
    if not (CLIENT_DIR / "node_modules" / "@nozbe" / "watermelondb").is_dir():
        raise DeviceError(
            f"WatermelonDB is not installed: run `npm ci --prefix {CLIENT_DIR}` (make test does)"
        )
    return node


# --------------------------------------------------------------------------------------------
# Schema helpers (schema.json is shared with device.js)


def _since(item: dict[str, Any]) -> int:
    return int(item.get("since", 1))


def tables_at(version: int) -> dict[str, list[dict[str, Any]]]:
    """Table -> its columns at schema ``version``."""
    return {
        name: [column for column in table["columns"] if _since(column) <= version]
        for name, table in SCHEMA["tables"].items()
        if _since(table) <= version
    }


def _sanitized(value: Any, column: dict[str, Any]) -> Any:
    """WatermelonDB's sanitizedRaw for one column: a value of the wrong type becomes null when
    the column is optional, else the type's empty value."""
    kind, optional = column["type"], bool(column.get("optional"))
    if kind == "string" and isinstance(value, str):
        return value
    if kind == "boolean" and isinstance(value, bool):
        return value
    if (
        kind == "number"
        and isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value  # not NaN
        and value not in (float("inf"), float("-inf"))
    ):
        return value
    if optional:
        return None
    return {"string": "", "boolean": False, "number": 0}[kind]


def _epoch_ms(value: Any) -> Any:
    """ISO 8601 -> epoch milliseconds, keeping the microseconds as a fraction (the comparison
    accepts the server's rounding or truncation to whole milliseconds)."""
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        whole = parsed.replace(microsecond=0)
        return int(whole.timestamp()) * 1000 + parsed.microsecond / 1000
    return value


def to_wire(native_value: Any, column: dict[str, Any]) -> Any:
    """A value of the server's native JSON pull in the wire contract's type for ``column``."""
    wire = column.get("wire", "plain")
    if native_value is None:
        return _sanitized(None, column)
    if wire == "datetime":
        return _sanitized(_epoch_ms(native_value), column)
    if wire == "json":
        return native_value if isinstance(native_value, str) else json.dumps(native_value)
    return _sanitized(native_value, column)


# --------------------------------------------------------------------------------------------
# The device


@dataclass
class _Node:
    """One running ``node device.js`` process, its stdout reader and its stderr log."""

    process: subprocess.Popen[str]
    replies: queue.Queue[str | None]
    stderr: IO[str]
    reader: threading.Thread
    healthy: bool = True

    @classmethod
    def spawn(cls, name: str) -> _Node:
        node = node_executable()
        stderr = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop())
            "w+", prefix=f"wmdb-{name}-", suffix=".log", delete=False
        )
        process = subprocess.Popen(
            [node, str(DEVICE_JS)],
            cwd=CLIENT_DIR,
            env={**os.environ, "NODE_ENV": "development"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            bufsize=1,
        )
        replies: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                replies.put(line)
            replies.put(None)

        reader = threading.Thread(target=read, name=f"wmdb-{name}", daemon=True)
        reader.start()
        return cls(process=process, replies=replies, stderr=stderr, reader=reader)

    @property
    def alive(self) -> bool:
        return self.healthy and self.process.poll() is None

    def stop(self) -> None:
        process = self.process
        if process.poll() is None and process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
                process.stdin.flush()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        self.reader.join(timeout=10)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self.stderr.close()
        Path(self.stderr.name).unlink(missing_ok=True)


# Idle device processes, kept for the next device: starting node and loading WatermelonDB costs
# about half a second, a fresh database in a running process a few milliseconds.
_IDLE: list[_Node] = []
_IDLE_LOCK = threading.Lock()
MAX_IDLE = 4


def _take_idle() -> _Node | None:
    with _IDLE_LOCK:
        while _IDLE:
            node = _IDLE.pop()
            if node.alive:
                return node
            node.stop()
    return None


def _give_back(node: _Node) -> bool:
    with _IDLE_LOCK:
        if node.alive and len(_IDLE) < MAX_IDLE:
            _IDLE.append(node)
            return True
    return False


def stop_idle_devices() -> None:
    """Stop the processes kept for reuse (also run at exit)."""
    with _IDLE_LOCK:
        nodes, _IDLE[:] = list(_IDLE), []
    for node in nodes:
        node.stop()


atexit.register(stop_idle_devices)


@dataclass
class WmdbDevice:
    """One WatermelonDB device. Use as a context manager; ``init`` is sent on entry.

    The device runs in a ``node`` process of its own while it is open. With ``reuse`` (the
    default) that process may be one an earlier device left idle: it gets a ``reset`` instead of
    ``init`` — a new, empty database (a fresh LokiJS adapter) and this device's connection
    settings, nothing kept from before — and goes back to the idle list on ``close`` unless a
    command of this device timed out or the process died."""

    base_url: str
    host: str
    token: str
    schema_version: int = 1
    limit: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    name: str = "device"
    reuse: bool = True
    _node: _Node | None = field(default=None, init=False, repr=False)

    # -- lifecycle --

    def __enter__(self) -> WmdbDevice:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        settings: dict[str, Any] = {
            "base_url": self.base_url,
            "host": self.host,
            "token": self.token,
            "schema_version": self.schema_version,
            "limit": self.limit,
        }
        idle = _take_idle() if self.reuse else None
        if idle is not None:
            self._node = idle
            self.command("reset", **settings)
            return
        self._node = _Node.spawn(self.name)
        self.command("init", **settings)

    def close(self) -> None:
        node, self._node = self._node, None
        if node is None:
            return
        if not (self.reuse and _give_back(node)):
            node.stop()

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the node process's stderr (WatermelonDB's and the driver's logging; a
        reused process's log holds the earlier devices' lines too)."""
        if self._node is None:
            return ""
        return Path(self._node.stderr.name).read_text(errors="replace")[-chars:]

    # -- protocol --

    def _send(self, message: dict[str, Any]) -> None:
        node = self._node
        if node is None or node.process.stdin is None:
            raise DeviceError(f"{self.name} is not running")
        try:
            node.process.stdin.write(json.dumps(message) + "\n")
            node.process.stdin.flush()
        except OSError:
            node.healthy = False
            raise

    def _receive(self, cmd: str, timeout: float | None) -> dict[str, Any]:
        """The next line from the device: the command's answer or an event (``"event"`` key)."""
        node = self._node
        if node is None:
            raise DeviceError(f"{self.name} is not running")
        try:
            line = node.replies.get(timeout=timeout or self.timeout)
        except queue.Empty:
            node.healthy = False
            node.process.kill()
            raise DeviceError(
                f"{self.name}: no answer to {cmd} within {timeout or self.timeout} s\n"
                f"{self.log_tail()}"
            ) from None
        if line is None:
            node.healthy = False
            raise DeviceError(f"{self.name} exited during {cmd}\n{self.log_tail()}")
        message: dict[str, Any] = json.loads(line)
        return message

    def command(
        self,
        cmd: str,
        *,
        expect_ok: bool = True,
        timeout: float | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        **args: Any,
    ) -> dict[str, Any]:
        """Send one command and return its answer. Event lines the command writes before its
        answer (``{"event": …}``, e.g. ``before_push``) go to ``on_event``; the device waits
        for ``{"cmd": "continue"}`` after each, which is sent once ``on_event`` returned (or
        raised: the command still runs to its end, then the exception propagates)."""
        answered = False
        try:
            self._send({"cmd": cmd, **args})
            failure: BaseException | None = None
            while True:
                reply = self._receive(cmd, timeout)
                if "event" not in reply:
                    break
                try:
                    if on_event is None:
                        raise DeviceError(f"{self.name}: unexpected event during {cmd}: {reply}")
                    if failure is None:
                        on_event(reply)
                except BaseException as exc:  # re-raised once the command ended
                    failure = failure or exc
                finally:
                    self._send({"cmd": "continue"})
            answered = True
        finally:
            if not answered and self._node is not None:
                self._node.healthy = False  # a late answer must not reach the next device
        if failure is not None:
            raise failure
        if expect_ok and not reply.get("ok"):
            raise DeviceError(
                f"{self.name}: {cmd} failed: status={reply.get('status')} "
                f"error={json.dumps(reply.get('error'))[:2000]}\n{self.log_tail(2000)}",
                reply,
            )
        return reply

    # -- commands --

    def sync(
        self,
        *,
        expect_ok: bool = True,
        max_rounds: int = 20,
        drop_push_response: bool = False,
        replay_push: bool = False,
        push_only: bool = False,
    ) -> dict[str, Any]:
        """Run ``synchronize()`` until the pull says no more (at most ``max_rounds``).
        ``push_only``: one ``synchronize()`` whose pull is local and empty (no request, cursor
        and lastPulledAt kept), so only the local changes are pushed."""
        return self.command(
            "sync",
            expect_ok=expect_ok,
            max_rounds=max_rounds,
            drop_push_response=drop_push_response,
            replay_push=replay_push,
            push_only=push_only,
        )

    def sync_with(
        self,
        *,
        before_push: Callable[[dict[str, Any]], None],
        expect_ok: bool = True,
        max_rounds: int = 20,
    ) -> dict[str, Any]:
        """``sync`` that stops inside every ``pushChanges``, after WatermelonDB applied the pull
        and collected the local changes and before the push is sent, and calls ``before_push``
        with the event (``{"event": "before_push", "round", "counts"}``): what it changes on the
        server lands between this synchronize()'s pull and its push. Not called when there is
        nothing to push."""
        return self.command(
            "sync",
            expect_ok=expect_ok,
            on_event=before_push,
            max_rounds=max_rounds,
            pause_before_push=True,
        )

    def create(
        self,
        table: str,
        raw: dict[str, Any],
        *,
        row_id: str | None = None,
        id_style: str = "uuid",
    ) -> str:
        """Create a record; its id comes from the app's UUID generator, or is ``row_id``, or
        WatermelonDB's own 16-character id with ``id_style="wmdb"``."""
        reply = self.command("create", table=table, raw=raw, id=row_id, id_style=id_style)
        return str(reply["id"])

    def update(self, table: str, row_id: str, values: dict[str, Any]) -> None:
        self.command("update", table=table, id=row_id, set=values)

    def delete(self, table: str, row_id: str) -> None:
        """markAsDeleted: the deletion is pushed on the next sync."""
        self.command("delete", table=table, id=row_id)

    def read(self, table: str, row_id: str) -> dict[str, Any]:
        """The model's typed accessors (dates as {iso, ms}, JSON parsed)."""
        values: dict[str, Any] = self.command("read", table=table, id=row_id)["values"]
        return values

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        tables: dict[str, list[dict[str, Any]]] = self.command("dump")["tables"]
        return tables

    def records(self, table: str) -> dict[str, dict[str, Any]]:
        return {row["id"]: row for row in self.dump()[table]}

    def record(self, table: str, row_id: str) -> dict[str, Any]:
        return self.records(table)[row_id]

    def status(self) -> dict[str, Any]:
        return self.command("status")

    def reset_cursor(self) -> None:
        self.command("reset_cursor")

    def set_token(self, token: str) -> None:
        self.token = token
        self.command("set_token", token=token)

    def set_limit(self, limit: int | None) -> None:
        self.limit = limit
        self.command("set_limit", limit=limit)

    def migrate_to(self, schema_version: int) -> None:
        self.command("migrate_to", schema_version=schema_version)
        self.schema_version = schema_version


# --------------------------------------------------------------------------------------------
# The server, seen by the same user


@dataclass(frozen=True)
class ServerClient:
    """``requests`` against the live server, on a tenant's host, as one user."""

    base_url: str
    host: str
    token: str

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Host": self.host, "Authorization": f"Bearer {self.token}", **(extra or {})}

    def get(self, path: str, **params: Any) -> requests.Response:
        return requests.get(
            self.base_url + path, params=params, headers=self._headers(), timeout=60
        )

    def post(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return requests.post(
            self.base_url + path, json=body, headers=self._headers(headers), timeout=60
        )

    def patch(
        self, path: str, body: Any, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return requests.patch(
            self.base_url + path, json=body, headers=self._headers(headers), timeout=60
        )

    def delete(self, path: str, **params: Any) -> requests.Response:
        return requests.delete(
            self.base_url + path, params=params, headers=self._headers(), timeout=60
        )

    def ok(self, response: requests.Response, status: int = 200) -> Any:
        assert response.status_code == status, (response.status_code, response.text[:2000])
        return response.json() if response.content else None


def server_rows(client: ServerClient, *, limit: int = 5000) -> dict[str, dict[str, dict[str, Any]]]:
    """Everything the server says ``client``'s user may see: a full native pull (no cursor),
    paged until ``has_more`` is false. Table -> id -> row (native JSON types)."""
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    cursor: str | None = None
    for _ in range(1000):
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        body = client.ok(client.get("/api/v1/sync/pull/", **params))
        for table, changes in body["changes"].items():
            bucket = rows.setdefault(table, {})
            for row in changes["upserted"]:
                bucket[row["id"]] = row
            for row_id in changes["deleted"]:
                bucket.pop(row_id, None)
        cursor = body["cursor"]
        if not body["has_more"]:
            return rows
    raise AssertionError("the native pull never stopped saying has_more")


def expected_device(
    client: ServerClient, *, schema_version: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """``server_rows`` in the wire types a device at ``schema_version`` should hold."""
    native = server_rows(client)
    expected: dict[str, dict[str, dict[str, Any]]] = {}
    for table, columns in tables_at(schema_version).items():
        expected[table] = {
            row_id: {"id": row_id, **{c["name"]: to_wire(row.get(c["name"]), c) for c in columns}}
            for row_id, row in native.get(table, {}).items()
        }
    return expected


def _same(device_value: Any, wire_value: Any, column: dict[str, Any]) -> bool:
    if column.get("wire") == "json" and isinstance(device_value, str) and device_value:
        # JSON text: compare the documents, not their spelling.
        try:
            return bool(json.loads(device_value) == json.loads(wire_value))
        except (TypeError, ValueError):
            return False
    if isinstance(device_value, bool) or isinstance(wire_value, bool):
        return device_value is wire_value
    if (
        column.get("wire") == "datetime"
        and isinstance(device_value, int | float)
        and isinstance(wire_value, int | float)
    ):
        return abs(device_value - wire_value) < 1
    return bool(device_value == wire_value)


def device_differences(
    device_tables: dict[str, list[dict[str, Any]]],
    expected: dict[str, dict[str, dict[str, Any]]],
    *,
    schema_version: int,
    skip_wire: Iterable[str] = (),
    tables: Iterable[str] | None = None,
) -> list[str]:
    """Human-readable differences between a device dump and the expected wire rows."""
    skip = set(skip_wire)
    problems: list[str] = []
    columns_by_table = tables_at(schema_version)
    for table in tables if tables is not None else columns_by_table:
        columns = [c for c in columns_by_table[table] if c.get("wire", "plain") not in skip]
        have = {row["id"]: row for row in device_tables.get(table, [])}
        want = expected.get(table, {})
        for row_id in sorted(set(want) - set(have)):
            problems.append(f"{table} {row_id}: missing on the device")
        for row_id in sorted(set(have) - set(want)):
            problems.append(
                f"{table} {row_id}: on the device ({have[row_id].get('_status')}) but not visible "
                "on the server"
            )
        for row_id in sorted(set(have) & set(want)):
            row = have[row_id]
            if row.get("_status") != "synced" or row.get("_changed"):
                problems.append(
                    f"{table} {row_id}: _status={row.get('_status')!r} "
                    f"_changed={row.get('_changed')!r}, not synced"
                )
            for column in columns:
                name = column["name"]
                if not _same(row.get(name), want[row_id][name], column):
                    problems.append(
                        f"{table} {row_id}.{name}: device {row.get(name)!r} != server "
                        f"{want[row_id][name]!r}"
                    )
    return problems


def assert_device_matches_server(
    device: WmdbDevice,
    client: ServerClient,
    *,
    skip_wire: Iterable[str] = (),
    tables: Iterable[str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The device holds exactly the rows the server lets ``client``'s user see (every table of
    the device's schema version, or ``tables``), every one ``synced``, value for value in the
    wire types; ``skip_wire`` leaves out columns of those wire kinds. Returns the dump."""
    dump = device.dump()
    expected = expected_device(client, schema_version=device.schema_version)
    problems = device_differences(
        dump,
        expected,
        schema_version=device.schema_version,
        skip_wire=skip_wire,
        tables=tables,
    )
    assert not problems, "device != server:\n  " + "\n  ".join(problems[:60])
    return dump


@contextlib.contextmanager
def device(
    client: ServerClient, *, schema_version: int = 1, limit: int | None = None, name: str = "device"
) -> Iterator[WmdbDevice]:
    """A device of ``client``'s user on the same server."""
    with WmdbDevice(
        base_url=client.base_url,
        host=client.host,
        token=client.token,
        schema_version=schema_version,
        limit=limit,
        name=name,
    ) as handle:
        yield handle
