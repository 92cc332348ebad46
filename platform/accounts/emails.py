"""Account emails (invitation, verification, password reset, password changed): composed in the
request, queued after commit, rendered and sent by a Celery worker through Django's email
framework (``EMAIL_BACKEND``: the console in development, SMTP in production).

Every message names its tenant and links to the tenant's own host, read from the tenant's primary
domain (tenants.Domain), never from the request's Host header: a forged Host must not be able to
point a reset link at an attacker's server.

Sending is queued from ``transaction.on_commit``, so a rolled-back invitation or reset never sends
mail, and a mail server outage never rolls back the change. The task retries transient failures
(SMTP and socket errors) with exponential backoff.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from celery import current_app
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.template.loader import render_to_string
from kombu.exceptions import OperationalError as BrokerUnavailable

from apikit.tenancy import tenant_schema_required
from apikit.tenant_tasks import TENANT_HEADER

logger = logging.getLogger(__name__)

# The Celery name of accounts.tasks.account_email_send_task (queued by name: no import cycle).
SEND_TASK = "accounts.account_email_send"


class EmailKind(StrEnum):
    INVITATION = "invitation"
    VERIFICATION = "verification"
    PASSWORD_RESET = "password_reset"  # noqa: S105  (a template name)
    PASSWORD_CHANGED = "password_changed"  # noqa: S105  (a template name)


# Where each kind's link points on the tenant's host (None: the message has no link). The API's
# GET on these paths checks a link without using it; a portal may serve its own page there.
LINK_PATHS: dict[EmailKind, str | None] = {
    EmailKind.INVITATION: "/api/v1/auth/invitations/accept/",
    EmailKind.VERIFICATION: "/api/v1/auth/verify/",
    EmailKind.PASSWORD_RESET: "/api/v1/auth/password/reset/confirm/",
    EmailKind.PASSWORD_CHANGED: None,
}


@dataclass(frozen=True)
class TenantIdentity:
    name: str
    host: str


def tenant_identity() -> TenantIdentity:
    """The active tenant's name and primary host (public table, not the request)."""
    tenant = getattr(connection, "tenant", None)
    domain = tenant.get_primary_domain() if tenant is not None else None
    if tenant is None or domain is None:
        raise LookupError(f"tenant {connection.schema_name!r} has no primary domain")  # type: ignore[attr-defined]
    return TenantIdentity(name=str(tenant.name), host=str(domain.domain))


def tenant_link(*, kind: EmailKind, query: dict[str, str]) -> str:
    path = LINK_PATHS[kind]
    if path is None:
        raise ValueError(f"{kind} emails carry no link")
    host = tenant_identity().host
    port = settings.ACCOUNT_LINK_PORT
    netloc = f"{host}:{port}" if port else host
    return f"{settings.ACCOUNT_LINK_SCHEME}://{netloc}{path}?{urlencode(query)}"


def account_email_queue(*, kind: EmailKind, to: str, context: dict[str, Any]) -> None:
    """Send ``kind`` to ``to`` once the current transaction commits, from a worker running in
    this tenant's schema. ``context`` must be JSON-serialisable (it travels in the message)."""
    schema = tenant_schema_required(what="Account email")
    kwargs = {"kind": str(kind), "to": to, "context": context}

    def enqueue() -> None:
        try:
            account_email_dispatch(schema_name=schema, kwargs=kwargs)
        except BrokerUnavailable as error:
            # The change stands; the user can ask for the link again (resend, reset).
            logger.warning("account email %s not queued (broker unavailable: %s)", kind, error)

    transaction.on_commit(enqueue, robust=True)


def account_email_dispatch(*, schema_name: str, kwargs: dict[str, Any]) -> None:
    """Queue the send task by name (this module never imports accounts.tasks), in
    ``schema_name``, on CELERY_EMAIL_QUEUE (read now, so a test run can use a queue of its own)."""
    current_app.send_task(
        SEND_TASK,
        kwargs=kwargs,
        headers={TENANT_HEADER: schema_name},
        queue=settings.CELERY_EMAIL_QUEUE,
    )


def account_email_render(
    *, kind: EmailKind, to: str, context: dict[str, Any]
) -> EmailMultiAlternatives:
    """The message, rendered in the active tenant: subject, text body and HTML alternative."""
    identity = tenant_identity()
    full = {**context, "tenant_name": identity.name, "tenant_host": identity.host}
    base = f"accounts/email/{kind}"
    subject = " ".join(render_to_string(f"{base}_subject.txt", full).split())
    message = EmailMultiAlternatives(
        subject=f"[{identity.name}] {subject}",
        body=render_to_string(f"{base}.txt", full),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers={"X-Verdant-Tenant": identity.host},
    )
    message.attach_alternative(render_to_string(f"{base}.html", full), "text/html")
    return message


def account_email_send(*, kind: str, to: str, context: dict[str, Any]) -> None:
    """Render and send now (the worker's side). SMTP errors propagate, for the task's retry."""
    account_email_render(kind=EmailKind(kind), to=to, context=context).send(fail_silently=False)
