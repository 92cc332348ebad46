"""A local HTTP server speaking enough of Twilio's Messages API for tests, benchmarks and fault
drills: create (POST .../Messages.json, form-encoded, basic auth), list with To / DateSent
filters (what reconciliation relies on), fetch one, and JSON errors ``{"code", "message",
"status"}``. Scripted responses make the next creates answer 429 / 500 / 400 or stall.

    server = FakeTwilio(account_sid="AC1", auth_token="secret").start()
    server.script({"status": 429, "retry_after": 1}, {"delay": 3, "record": True})
    server.create_requests   # POSTs received (the lead's duplicate counter)
    server.stop()

``accounts={"AC2": "token2"}`` adds more accounts on the same server (tenants with their own
provider account); each message remembers the account it was sent with (``account``).

``python -m tests.notify.fake_twilio --port 8999`` runs one in the foreground; ``GET /_fake/stats`` reports
the counters and ``POST /_fake/script`` (JSON list) / ``POST /_fake/reset`` drive it over HTTP.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

_PREFIX = "/2010-04-01/Accounts/"


@dataclass
class FakeMessage:
    sid: str
    to: str
    from_: str
    body: str
    status_callback: str
    date_created: datetime
    status: str = "queued"
    account: str = ""

    def as_json(self, account_sid: str) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": account_sid,
            "to": self.to,
            "from": self.from_,
            "body": self.body,
            "status": self.status,
            "direction": "outbound-api",
            "date_created": format_datetime(self.date_created),
            "date_sent": format_datetime(self.date_created),
            "error_code": None,
            "error_message": None,
        }


@dataclass
class FakeTwilio:
    account_sid: str = "ACfake"
    auth_token: str = "fake-token"
    host: str = "127.0.0.1"
    port: int = 0
    # More accounts (sid -> auth token) served besides ``account_sid``.
    accounts: dict[str, str] = field(default_factory=dict)
    messages: list[FakeMessage] = field(default_factory=list)
    create_requests: int = 0
    list_requests: int = 0
    _script: deque[dict[str, Any]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- control --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeTwilio is not started.")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def start(self) -> FakeTwilio:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self._server.serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def script(self, *responses: dict[str, Any]) -> None:
        """Queue answers for the next creates: ``{"status": 429|500|400|..., "code": int,
        "message": str, "retry_after": seconds, "delay": seconds, "record": bool}``. ``record``
        (default: only for 2xx and delays) keeps the message as accepted despite the answer."""
        with self._lock:
            self._script.extend(responses)

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.messages.clear()
            self.create_requests = 0
            self.list_requests = 0

    def stats(self) -> dict[str, Any]:
        with self._lock:
            bodies: dict[tuple[str, str], int] = {}
            for message in self.messages:
                key = (message.to, message.body)
                bodies[key] = bodies.get(key, 0) + 1
            return {
                "create_requests": self.create_requests,
                "list_requests": self.list_requests,
                "messages": len(self.messages),
                "duplicates": sum(count - 1 for count in bodies.values() if count > 1),
            }

    # --- behaviour ------------------------------------------------------------------------

    def tokens(self) -> dict[str, str]:
        return {self.account_sid: self.auth_token, **self.accounts}

    def _create(
        self, form: dict[str, str], account: str = ""
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self.create_requests += 1
            step = self._script.popleft() if self._script else {}
        status = int(step.get("status", 201))
        to = form.get("To", "")
        if not to.startswith("+") or not to[1:].isdigit():
            return 400, _error(21211, f"The 'To' number {to} is not a valid phone number.", 400), {}
        if not form.get("Body"):
            return 400, _error(21602, "Message body is required.", 400), {}
        record = bool(step.get("record", status < 300))
        message = FakeMessage(
            sid="SM" + uuid.uuid4().hex,
            to=to,
            from_=form.get("From", form.get("MessagingServiceSid", "")),
            body=form["Body"],
            status_callback=form.get("StatusCallback", ""),
            date_created=datetime.now(UTC).replace(microsecond=0),
            account=account or self.account_sid,
        )
        if record:
            with self._lock:
                self.messages.append(message)
        if step.get("delay"):
            time.sleep(float(step["delay"]))
        if status >= 300:
            headers = {"Retry-After": str(step["retry_after"])} if "retry_after" in step else {}
            code = int(step.get("code", {429: 20429, 500: 20500, 503: 20503}.get(status, 21211)))
            return status, _error(code, str(step.get("message", f"HTTP {status}")), status), headers
        return status, message.as_json(message.account), {}

    def _list(self, query: dict[str, list[str]], account: str = "") -> dict[str, Any]:
        account = account or self.account_sid
        with self._lock:
            self.list_requests += 1
            found = [m for m in self.messages if m.account == account]
        to = (query.get("To") or [""])[0]
        if to:
            found = [m for m in found if m.to == to]
        after = (query.get("DateSent>") or [""])[0]
        if after:
            day = datetime.fromisoformat(after[:10]).date()
            found = [m for m in found if m.date_created.date() >= day]
        found.sort(key=lambda m: m.date_created, reverse=True)
        return {
            "messages": [m.as_json(m.account) for m in found],
            "next_page_uri": None,
        }

    def _authorised(self, header: str, account: str = "") -> bool:
        account = account or self.account_sid
        token = self.tokens().get(account)
        if token is None:
            return False
        expected = base64.b64encode(f"{account}:{token}".encode()).decode()
        return header == f"Basic {expected}"


def _error(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


class _Handler(BaseHTTPRequestHandler):
    server_fake: FakeTwilio
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: a benchmark sends thousands of requests."""

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _messages_path(self, path: str) -> tuple[str, str] | None:
        """(account, the rest after .../Messages) for a known account's messages path."""
        for account in self.server_fake.tokens():
            base = f"{_PREFIX}{account}/Messages"
            if path.startswith(base):
                return account, path[len(base) :]
        return None

    def do_POST(self) -> None:
        fake = self.server_fake
        parsed = urlparse(self.path)
        raw = self._read()
        if parsed.path == "/_fake/script":
            fake.script(*json.loads(raw or b"[]"))
            return self._reply(200, fake.stats())
        if parsed.path == "/_fake/reset":
            fake.reset()
            return self._reply(200, fake.stats())
        found = self._messages_path(parsed.path)
        if found is None or found[1] != ".json":
            return self._reply(404, _error(20404, "The requested resource was not found", 404))
        account = found[0]
        if not fake._authorised(self.headers.get("Authorization", ""), account):
            return self._reply(401, _error(20003, "Authenticate", 401))
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        status, payload, headers = fake._create(form, account)
        # The client may have given up (read timeout) or died: the message stays accepted.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._reply(status, payload, headers)
        return None

    def do_GET(self) -> None:
        fake = self.server_fake
        parsed = urlparse(self.path)
        if parsed.path == "/_fake/stats":
            return self._reply(200, fake.stats())
        found = self._messages_path(parsed.path)
        if found is None:
            return self._reply(404, _error(20404, "The requested resource was not found", 404))
        account, rest = found
        if not fake._authorised(self.headers.get("Authorization", ""), account):
            return self._reply(401, _error(20003, "Authenticate", 401))
        if rest == ".json":
            return self._reply(200, fake._list(parse_qs(parsed.query), account))
        sid = rest.strip("/").removesuffix(".json")
        with fake._lock:
            match = next((m for m in fake.messages if m.sid == sid and m.account == account), None)
        if match is None:
            return self._reply(404, _error(20404, "The requested resource was not found", 404))
        return self._reply(200, match.as_json(account))


def main() -> None:
    """Serve a fake in the foreground (fault drills against a local worker, docs/reminders.md).
    A test double: it lives under tests/ and is never in the image (.dockerignore)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--account-sid", default="ACfake")
    parser.add_argument("--auth-token", default="fake-token")
    options = parser.parse_args()
    fake = FakeTwilio(
        account_sid=options.account_sid, auth_token=options.auth_token, port=options.port
    )
    sys.stdout.write(
        f"fake Twilio on http://{fake.host}:{options.port} "
        f"(TWILIO_API_BASE; account {fake.account_sid})\n"
    )
    fake.serve_forever()


if __name__ == "__main__":
    main()
