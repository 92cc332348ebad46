"""The drain before shutdown (issue 18, item 8; platform/realtime/drain.py): the pod's preStop
hook, as the chart renders it, run against a real uvicorn of its own (a drained process takes no
socket again, so never the package's shared one). While it drains: /readyz 503, a new socket is
closed with 1001, and the open sockets of both colliding tenants are closed with 1001 at their
own slots, spread evenly over REALTIME_DRAIN_SECONDS; the hook returns when the window has
passed. The drain route answers only this machine's loopback, and no request through a proxy."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection

from accounts.roles import Role
from realtime.drain import CLOSE_GOING_AWAY
from realtime.probes import from_loopback
from tests.deploy.chart import by_kind, render
from tests.realtime.conftest import RealtimeWorld, access_token, close_code, open_socket, ready
from tests.realtime.live import LiveASGI, live_uvicorn

# Short, so the test is; the slots of the six sockets are 0.5 s apart.
DRAIN_SECONDS = 3
ROLES = (Role.NURSE, Role.VIEWER, Role.RECEPTIONIST)
# A close is never early (each has its slot); on a loaded machine it may be late by this much.
LATE_SECONDS = 3.0


@pytest.fixture(scope="module")
def drained(rt: RealtimeWorld) -> Iterator[RealtimeWorld]:
    """The world of the package, served by a uvicorn of this module's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REALTIME_DRAIN_SECONDS", str(DRAIN_SECONDS))
        with live_uvicorn(name="drain") as server:
            yield RealtimeWorld(server=server, world=rt.world)


def _url(server: LiveASGI, path: str) -> str:
    return f"http://127.0.0.1:{server.port}{path}"


def _pre_stop_command(port: int) -> list[str]:
    """The chart's preStop hook for a pod serving on ``port``, with this interpreter as the
    image's ``python`` (the image has no curl)."""
    values = {"realtime": {"port": port, "preStopSleepSeconds": 0, "drainSeconds": DRAIN_SECONDS}}
    pod = by_kind(render(values), "Deployment")["verdant-realtime"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {item["name"]: item.get("value") for item in container["env"]}
    # The process drains over the window the chart gives it.
    assert env["REALTIME_DRAIN_SECONDS"] == str(DRAIN_SECONDS)
    command: list[str] = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


class CloseWatch(threading.Thread):
    """Reads one socket until the server closes it; when (monotonic) and with which code."""

    def __init__(self, ws: ClientConnection) -> None:
        super().__init__(daemon=True)
        self.ws = ws
        self.closed_at: float | None = None
        self.code: int | None = None
        self.messages: list[str] = []

    def run(self) -> None:
        try:
            while True:
                self.messages.append(str(self.ws.recv(timeout=DRAIN_SECONDS + 30)))
        except ConnectionClosed as closed:
            self.closed_at = time.monotonic()
            self.code = closed.rcvd.code if closed.rcvd is not None else None
        except TimeoutError:
            pass


def test_the_pre_stop_hook_closes_every_socket_with_1001_spread_over_the_window(
    drained: RealtimeWorld, committed_db: None
) -> None:
    a, b = drained.world.a, drained.world.b
    command = _pre_stop_command(drained.server.port)
    with contextlib.ExitStack() as stack:
        sockets = [
            stack.enter_context(ready(drained, side.host, access_token(side.schema, role)))
            for role in ROLES
            for side in (a, b)
        ]
        watches = [CloseWatch(ws) for ws in sockets]
        for watch in watches:
            watch.start()
        assert requests.get(_url(drained.server, "/readyz"), timeout=30).status_code == 200

        hook: dict[str, Any] = {}

        def run_hook() -> None:
            hook["result"] = subprocess.run(
                command, capture_output=True, text=True, timeout=DRAIN_SECONDS + 30
            )
            hook["ended"] = time.monotonic()

        started = time.monotonic()
        runner = threading.Thread(target=run_hook, daemon=True)
        runner.start()

        # While it drains: out of the Service (503), alive (200), and a new socket goes away.
        deadline = time.monotonic() + 10
        while True:
            readyz = requests.get(_url(drained.server, "/readyz"), timeout=10)
            if readyz.status_code == 503 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert readyz.status_code == 503
        assert readyz.json()["error"]["code"] == "draining"
        assert requests.get(_url(drained.server, "/healthz"), timeout=10).status_code == 200
        with open_socket(drained, a.host, token=access_token(a.schema, Role.CLINICIAN)) as late:
            assert close_code(late, timeout=10) == CLOSE_GOING_AWAY

        runner.join(timeout=DRAIN_SECONDS + 40)
        for watch in watches:
            watch.join(timeout=10)

    result = hook["result"]
    assert result.returncode == 0, result.stderr
    # The hook returns once the window has passed, not before.
    assert hook["ended"] - started >= DRAIN_SECONDS
    assert [watch.code for watch in watches] == [CLOSE_GOING_AWAY] * len(watches)
    # Each client was told why before the close frame (docs/realtime.md, "Close codes").
    assert all('"code":1001' in watch.messages[-1] for watch in watches)
    offsets = sorted(watch.closed_at - started for watch in watches if watch.closed_at)
    n = len(offsets)
    assert n == len(watches) == 2 * len(ROLES)
    for i, offset in enumerate(offsets):
        # The i-th close at its slot i * window / n: never before it (so not all at once), and
        # not much after it.
        slot = DRAIN_SECONDS * i / n
        assert slot - 0.05 <= offset <= slot + LATE_SECONDS, (i, offsets)
    # Not bunched (all at once would span nothing), even if the first close came late.
    assert offsets[-1] - offsets[0] >= 0.5 * DRAIN_SECONDS * (n - 1) / n, offsets

    # A second call (an operator's, a retried hook) joins the finished drain.
    again = requests.post(_url(drained.server, "/drain"), timeout=30)
    assert again.status_code == 200
    assert again.json() == {"status": "drained", "closed": n, "seconds": float(DRAIN_SECONDS)}


@pytest.mark.parametrize(
    "headers",
    [
        # uvicorn trusts forwarding headers from 127.0.0.1 (its --forwarded-allow-ips): the
        # request's client becomes the forwarded address, not a loopback one.
        {"X-Forwarded-For": "203.0.113.9"},
        # A proxy that forwards a loopback address is still a proxy.
        {"X-Forwarded-For": "127.0.0.1"},
        {"Forwarded": "for=127.0.0.1"},
        {"X-Real-IP": "127.0.0.1"},
    ],
    ids=["remote-client", "forwarded-loopback", "forwarded", "real-ip"],
)
def test_the_drain_route_is_a_404_through_a_proxy(
    drained: RealtimeWorld, headers: dict[str, str]
) -> None:
    response = requests.post(_url(drained.server, "/drain"), headers=headers, timeout=30)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    # The same answer as any unknown path: nothing says a route is there.
    unknown = requests.post(_url(drained.server, "/no-such-path"), timeout=30)
    assert response.json()["error"]["detail"] == unknown.json()["error"]["detail"]


def test_the_drain_route_takes_post_only(drained: RealtimeWorld) -> None:
    response = requests.get(_url(drained.server, "/drain"), timeout=30)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("client", "headers", "local"),
    [
        (("127.0.0.1", 50000), [], True),
        (("127.0.0.53", 50000), [], True),
        (("::1", 50000), [], True),
        (("::ffff:127.0.0.1", 50000), [], True),
        (("10.244.1.7", 50000), [], False),  # another pod, the kubelet, the ingress controller
        (("192.168.0.10", 50000), [], False),
        (("::ffff:10.0.0.1", 50000), [], False),
        (("fd00::1", 50000), [], False),
        (None, [], False),
        (("/run/uvicorn.sock", None), [], False),
        (("127.0.0.1", 50000), [(b"x-forwarded-for", b"10.0.0.1")], False),
    ],
)
def test_only_loopback_without_forwarding_is_local(
    client: tuple[str, int | None] | None, headers: list[tuple[bytes, bytes]], local: bool
) -> None:
    assert from_loopback({"type": "http", "client": client, "headers": headers}) is local
