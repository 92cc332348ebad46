"""Issue 19, item 1: account emails over real SMTP. A local aiosmtpd server on a free port
receives what Django's SMTP backend sends: once from this process, and once from a real Celery
worker process that took the task from Redis after the invitation's transaction committed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from django.conf import settings as django_settings
from django.db import connection
from django_tenants.utils import tenant_context

from accounts.emails import EmailKind, account_email_send
from accounts.models import Invitation
from accounts.services import invitation_create
from accounts.tasks import account_email_send_task
from apikit.tenant_tasks import TENANT_HEADER
from tests.accounts.conftest import Inbox, SMTPServer, free_port, link_of
from tests.committed import committed
from tests.conftest import TenantWorld

ROOT = Path(__file__).resolve().parents[2]


def test_the_smtp_backend_delivers_text_and_html_naming_the_tenant(
    alpha: TenantWorld, smtp_settings: SMTPServer
) -> None:
    with tenant_context(alpha.tenant):
        account_email_send(
            kind=EmailKind.PASSWORD_CHANGED, to="someone@example.com",
            context={"email": "someone@example.com"},
        )  # fmt: skip
    [received] = smtp_settings.inbox.wait_for(1)
    assert received.rcpt_tos == ["someone@example.com"]
    assert received.mail_from == "no-reply@verdant.test"
    assert received.message["Subject"] == "[Alpha Org] Your password was changed"
    assert received.message["X-Verdant-Tenant"] == alpha.host
    assert "Alpha Org" in received.text()
    assert "<strong>Alpha Org</strong>" in received.html()


def test_a_refused_connection_raises_for_the_task_to_retry(
    alpha: TenantWorld, settings: Any
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = (
        "127.0.0.1",
        free_port(),
        False,
    )
    with tenant_context(alpha.tenant), pytest.raises(ConnectionRefusedError):
        account_email_send(
            kind=EmailKind.PASSWORD_CHANGED, to="x@example.com", context={"email": "x@example.com"}
        )


# --- the real worker ------------------------------------------------------------------------------


@pytest.fixture
def worker(
    settings: Any, smtp_server: SMTPServer, tmp_path: Path, django_db_blocker: Any
) -> Iterator[Path]:
    """A Celery worker (solo pool) on a queue of this test's own, sending over SMTP to the local
    server; this process queues account emails to that queue."""
    queue = f"test-email-{uuid.uuid4().hex[:8]}"
    settings.CELERY_EMAIL_QUEUE = queue
    db = connection.settings_dict
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))},
        "DJANGO_SETTINGS_MODULE": "settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": str(django_settings.REDIS_URL),
        "CELERY_EMAIL_QUEUE": queue,
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": smtp_server.host,
        "EMAIL_PORT": str(smtp_server.port),
        "EMAIL_USE_TLS": "false",
        "DEFAULT_FROM_EMAIL": "Verdant <accounts@verdant.test>",
        "LOG_FORMAT": "plain",
    }
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "settings.celery_app", "worker",
             "--pool", "solo", "-Q", queue, "-n", f"{queue}@%h",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 45
        while " ready." not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        yield log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.worker
@pytest.mark.django_db
def test_an_invitation_is_sent_by_the_worker_after_commit(
    alpha: TenantWorld, beta: TenantWorld, worker: Path, smtp_server: SMTPServer,
    django_db_blocker: Any,
) -> None:  # fmt: skip
    """Each tenant's invitation goes out from the worker, rendered in its own tenant: the
    colliding address gets two messages, each naming its tenant and linking to its host."""
    email = f"invitee-{uuid.uuid4().hex[:8]}@example.com"

    def invite(world: TenantWorld) -> Callable[[], None]:
        def work() -> None:
            with tenant_context(world.tenant):
                invitation_create(email=email, role="nurse", full_name="", invited_by=None)

        return work

    def cleanup() -> None:
        for world in (alpha, beta):
            with tenant_context(world.tenant):
                Invitation.objects.filter(email=email).delete()

    with django_db_blocker.unblock():
        try:
            committed(invite(alpha))
            committed(invite(beta))
            received = smtp_server.inbox.wait_for(2)
        finally:
            committed(cleanup)
    by_host = {message.message["X-Verdant-Tenant"]: message for message in received}
    assert set(by_host) == {alpha.host, beta.host}, worker.read_text(errors="replace")[-3000:]
    for world, name in ((alpha, "Alpha Org"), (beta, "Beta Org")):
        message = by_host[world.host]
        assert message.rcpt_tos == [email]
        assert message.mail_from == "accounts@verdant.test"
        assert name in str(message.message["Subject"])
        assert link_of(message.text())[0] == world.host
        assert name in message.html()


class RefusingOnce(Inbox):
    """Answers the first message with a temporary failure (451), then accepts."""

    refused: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.refused == 0:
            self.refused += 1
            return "451 4.3.0 Try again later"
        return await super().handle_DATA(server, session, envelope)


def test_a_temporary_smtp_refusal_is_retried_by_the_task(alpha: TenantWorld, settings: Any) -> None:
    inbox = RefusingOnce()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
        kwargs = {"kind": "password_changed", "to": "r@example.com", "context": {"email": "r@x"}}
        # Eager: Celery runs the autoretry at once instead of after the backoff.
        account_email_send_task.apply(
            kwargs=kwargs, headers={TENANT_HEADER: alpha.tenant.schema_name}
        ).get()
        [received] = inbox.wait_for(1)
    finally:
        controller.stop()
    assert inbox.refused == 1
    assert received.rcpt_tos == ["r@example.com"]
