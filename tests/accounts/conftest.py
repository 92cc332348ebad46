"""Account-email fixtures: a real SMTP server (aiosmtpd) on a free local port, and account emails
delivered in this process by the real Celery task (run eagerly) instead of through the broker."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller

from accounts import emails
from accounts.tasks import account_email_send_task
from apikit.tenant_tasks import TENANT_HEADER

LINK = re.compile(r"https?://\S+")


def free_port() -> int:
    """A port nothing listens on: bind to port 0, read what the kernel chose, let it go (the
    Controller cannot take port 0 itself)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Received:
    """What the SMTP server was handed: the envelope and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        assert part is not None
        return str(part.get_content())


@dataclass
class Inbox:
    """aiosmtpd's handler: every message it receives, in order."""

    received: list[Received] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self.arrived:
            self.received.append(
                Received(
                    mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos), message=parsed
                )
            )
            self.arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait_for(self, count: int, *, seconds: float = 45) -> list[Received]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout=seconds)
        assert len(self.received) >= count, f"{len(self.received)} of {count} messages arrived"
        return self.received


@dataclass(frozen=True)
class SMTPServer:
    host: str
    port: int
    inbox: Inbox


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SMTPServer(host="127.0.0.1", port=port, inbox=inbox)
    finally:
        controller.stop()


@pytest.fixture
def smtp_settings(settings: Any, smtp_server: SMTPServer) -> SMTPServer:
    """Django's SMTP backend pointed at the local server (plain SMTP, no TLS)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = smtp_server.host
    settings.EMAIL_PORT = smtp_server.port
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_HOST_USER = ""
    settings.EMAIL_HOST_PASSWORD = ""
    return smtp_server


@pytest.fixture
def deliver(monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any) -> Any:
    """Account emails run the real send task in this process (eagerly, in the schema named by
    the message's tenant header) when the request's transaction commits, instead of going
    through Redis. Returns the on-commit capture, so a test can see that nothing was sent
    before the commit."""

    def dispatch(*, schema_name: str, kwargs: dict[str, Any]) -> None:
        result = account_email_send_task.apply(kwargs=kwargs, headers={TENANT_HEADER: schema_name})
        result.get()  # re-raises what the task raised

    monkeypatch.setattr(emails, "account_email_dispatch", dispatch)
    return django_capture_on_commit_callbacks


def link_of(message: Any) -> tuple[str, str, dict[str, str]]:
    """(host, path, query) of the one link in a message's text body."""
    body = message.body if hasattr(message, "body") else message
    urls = LINK.findall(body)
    assert len(urls) == 1, body
    parts = urlsplit(urls[0])
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    return parts.netloc, parts.path, query
