"""Celery tasks of accounts: sending account emails. Tasks call accounts.emails and hold no
logic; accounts.emails queues them by name (SEND_TASK), so nothing imports this module."""

from __future__ import annotations

import smtplib
from typing import Any

from celery import shared_task

from accounts.emails import SEND_TASK, account_email_send
from apikit.tenant_tasks import TenantOnlyTask


@shared_task(
    name=SEND_TASK,
    base=TenantOnlyTask,
    acks_late=True,
    reject_on_worker_lost=True,
    # The mail server down, refusing for now (4xx) or the connection dropped: try again later.
    # A permanent refusal of the recipient (SMTPRecipientsRefused) is not retried.
    autoretry_for=(
        smtplib.SMTPServerDisconnected,
        smtplib.SMTPConnectError,
        smtplib.SMTPHeloError,
        smtplib.SMTPDataError,
        ConnectionError,
        TimeoutError,
    ),
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
    ignore_result=True,
)
def account_email_send_task(*, kind: str, to: str, context: dict[str, Any]) -> None:
    """Render ``kind`` in the tenant that queued it and send it to ``to``."""
    account_email_send(kind=kind, to=to, context=context)
