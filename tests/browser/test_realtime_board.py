"""Issue 18, item 9: the live appointment board in a real browser (headless chromium through
Playwright). A page on tenant A's host opens the browser's own ``WebSocket`` to a real uvicorn
serving settings.asgi, offering ``["verdant.v1", "bearer.<jwt>"]`` (the token got from the REST
API's login), and subscribes to a facility's board; an appointment booked and checked in through
the REST API (a real gunicorn) appears on it. A page of tenant B, subscribed to the colliding
facility (same id) with a token of the user with the same email, sees nothing of it.

The browser sends its ``Origin`` (the page's host): the server accepts it because it names the
socket's own host."""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from accounts.roles import Role
from tests.browser.conftest import BrowserWorld
from tests.browser.test_admin_and_docs import api_token
from tests.realtime.live import LiveASGI, live_uvicorn
from tests.security.world import SHARED, USER_IDS, Side, email_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db]

FACILITY = str(SHARED["clinical.facility"])
# A day no other browser test books (the clinician is the world's shared one).
DAY = dt.date(2032, 2, 2)
# Events wait for the commit-safe watermark: another database's transactions no longer hold it
# (sync.cursor.WATERMARK_SQL), but one it cannot prove finished still does, as does any long
# transaction of the test database. Generous, so a busy machine delays the test instead of
# failing it.
EVENT_TIMEOUT_MS = 120_000

# The client a front desk would write: the browser's WebSocket, the bearer token as a
# subprotocol (never in the URL), subscribe once the server says it is ready; frames kept on
# window.board for the test to read.
BOARD_JS = """
([url, token, facility, day]) => new Promise((resolve, reject) => {
  window.board = {frames: [], closed: null, protocol: null};
  const ws = new WebSocket(url, ["verdant.v1", "bearer." + token]);
  ws.onopen = () => { window.board.protocol = ws.protocol; };
  ws.onmessage = (message) => {
    const frame = JSON.parse(message.data);
    window.board.frames.push(frame);
    if (frame.type === "ready") {
      ws.send(JSON.stringify({type: "subscribe", sub: "board", kind: "appointments",
                              params: {facility: facility, from: day, to: day}}));
    }
    if (frame.type === "subscribed") { resolve(window.board.protocol); }
    if (frame.type === "error") { reject(new Error(JSON.stringify(frame))); }
  };
  ws.onclose = (event) => {
    window.board.closed = event.code;
    reject(new Error("closed " + event.code + " " + event.reason));
  };
})
"""

SEEN_JS = """([id, name]) => window.board.frames.some(
    (f) => f.type === "event" && f.event === name && f.appointment.id === id)"""


@pytest.fixture(scope="module")
def asgi(browser_world: BrowserWorld) -> Iterator[LiveASGI]:
    """uvicorn on the committed br-a / br-b world, beside the package's gunicorn."""
    with live_uvicorn(name="browser-realtime") as server:
        yield server


@contextlib.contextmanager
def board_page(
    browser: Any, bw: BrowserWorld, asgi: LiveASGI, side: Side, token: str
) -> Iterator[Any]:
    context = browser.new_context()
    context.set_default_timeout(60_000)
    try:
        page = context.new_page()
        # Any page of the tenant's host: the socket's Origin is this host.
        page.goto(bw.url(side.host, "/healthz"))
        url = f"ws://{side.host}:{asgi.port}/ws/v1/"
        protocol = page.evaluate(BOARD_JS, [url, token, FACILITY, DAY.isoformat()])
        # The server answers with verdant.v1, never echoing the token.
        assert protocol == "verdant.v1"
        yield page
    finally:
        context.close()


def _api(bw: BrowserWorld, side: Side, token: str, method: str, path: str, **kw: Any) -> Any:
    response = requests.request(
        method,
        f"{bw.server.url}/api/v1/clinical/{path}",
        headers={"Host": side.host, "Authorization": f"Bearer {token}"},
        timeout=30,
        **kw,
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


def test_a_check_in_through_the_api_appears_on_the_board(
    browser: Any, browser_world: BrowserWorld, asgi: LiveASGI
) -> None:
    bw = browser_world
    a, b = bw.world.a, bw.world.b
    desk_a = api_token(bw, a.host, email_for(Role.RECEPTIONIST), a.password)
    desk_b = api_token(bw, b.host, email_for(Role.RECEPTIONIST), b.password)
    admin_a = api_token(bw, a.host, email_for(Role.TENANT_ADMIN), a.password)
    with (
        board_page(browser, bw, asgi, a, desk_a) as page_a,
        board_page(browser, bw, asgi, b, desk_b) as page_b,
    ):
        starts = dt.datetime.combine(DAY, dt.time(9, 0), tzinfo=dt.UTC)
        booked = _api(
            bw,
            a,
            admin_a,
            "post",
            "appointments/",
            json={
                "patient": str(SHARED["clinical.patient"]),
                "clinician": str(USER_IDS[Role.CLINICIAN]),
                "facility": FACILITY,
                "starts_at": starts.isoformat(),
                "ends_at": (starts + dt.timedelta(minutes=30)).isoformat(),
                "reason": "browser board",
            },
        )
        # The world (br-a / br-b) is dropped with the package: no clean-up of its rows.
        appointment = booked["id"]
        # The booking appears first (a check-in committed before the relay read the booking
        # would reach the board as one event carrying the current state).
        page_a.wait_for_function(SEEN_JS, arg=[appointment, "appointment.created"],
                                 timeout=EVENT_TIMEOUT_MS)  # fmt: skip
        checked_in = _api(bw, a, admin_a, "post", f"appointments/{appointment}/check-in/")
        assert checked_in["status"] == "checked_in"
        page_a.wait_for_function(
            SEEN_JS, arg=[appointment, "appointment.checked_in"], timeout=EVENT_TIMEOUT_MS
        )
        frames = page_a.evaluate("window.board.frames")
        events = [f for f in frames if f.get("type") == "event"]
        assert [e["event"] for e in events if e["appointment"]["id"] == appointment] == [
            "appointment.created",
            "appointment.checked_in",
        ]
        seen = next(e for e in events if e["event"] == "appointment.checked_in")
        assert seen["appointment"]["status"] == "checked_in"
        assert seen["appointment"]["patient"]["given_name"] == a.marker
        # A receptionist's projection: no phone.
        assert "phone" not in seen["appointment"]["patient"]
        assert page_a.evaluate("window.board.closed") is None

        # Tenant B's board of the colliding facility got nothing of A's writes; give the
        # relay a moment more than A needed.
        time.sleep(1.5)
        frames_b = page_b.evaluate("window.board.frames")
        assert [f["type"] for f in frames_b] == ["ready", "subscribed"], frames_b
