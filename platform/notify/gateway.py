"""The SMS gateway interface and its backends.

``gateway_get()`` returns the backend named by ``NOTIFY_SMS_BACKEND``: ``console`` (development:
prints, or counts only with ``NOTIFY_CONSOLE_OUTPUT=null``) or ``twilio`` (the Messages API over
HTTPS, or any server speaking it, via ``TWILIO_API_BASE``), sending with the active tenant's own
sender (number or messaging service, and account) when it has one, else the deployment's
(``notify.selectors.sender_config_get``; docs/sms-senders.md).

Every failure is a ``GatewayError`` with a ``kind`` the caller acts on:

* ``transient``: the provider did not take the message (connection refused, connect timeout,
  429, 503) -> safe to retry later, with backoff;
* ``permanent``: the provider refused this message for good (invalid number, ...) -> failed;
* ``ambiguous``: the request may have been accepted (read timeout, reset after sending, 5xx, a
  2xx without a message id) -> never resend blindly; reconcile with ``lookup`` first.
"""

from __future__ import annotations

import logging
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

import requests
from django.conf import settings

from notify.selectors import sender_config_get

logger = logging.getLogger(__name__)

ErrorKind = Literal["transient", "permanent", "ambiguous"]
# Twilio error codes meaning "the recipient opted out at the carrier" (STOP sent to Twilio).
RECIPIENT_UNSUBSCRIBED = frozenset({"21610"})


@dataclass(frozen=True)
class SendResult:
    provider_sid: str
    status: str


class GatewayError(Exception):
    def __init__(
        self, kind: ErrorKind, code: str, detail: str, *, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{kind} {code}: {detail}")
        self.kind: ErrorKind = kind
        self.code = code
        self.detail = detail
        self.retry_after = retry_after


class Gateway(Protocol):
    name: str
    # Whether ``lookup`` can tell if a message reached the provider (needed to reconcile).
    can_lookup: bool

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult: ...

    def lookup(self, *, to: str, body: str, since: datetime) -> str | None:
        """The provider's id of a message with this recipient and text created at or after
        ``since``, or None if there is none. Raises GatewayError (transient) if unsure."""
        ...


@dataclass
class ConsoleGateway:
    """Development backend: writes each message to stdout (or nowhere, ``output="null"``)."""

    output: str = "stdout"
    sender: str = ""
    name: str = "console"
    can_lookup: bool = False
    sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        with self._lock:
            self.sent += 1
        sid = "CO" + uuid.uuid4().hex
        if self.output != "null":
            origin = f" from {self.sender}" if self.sender else ""
            sys.stdout.write(f"[sms] {sid}{origin} to {to}: {body}\n")
        return SendResult(provider_sid=sid, status="sent")

    def lookup(self, *, to: str, body: str, since: datetime) -> str | None:
        raise GatewayError("transient", "lookup_unsupported", "The console backend keeps no log.")


def _twilio_time(value: str) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class TwilioGateway:
    """Twilio's Messages API (``/2010-04-01/Accounts/{sid}/Messages.json``), form-encoded,
    HTTP basic auth, with connect and read timeouts on every call."""

    name = "twilio"
    can_lookup = True

    def __init__(
        self,
        *,
        api_base: str,
        account_sid: str,
        auth_token: str,
        from_number: str,
        messaging_service_sid: str = "",
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
    ) -> None:
        self.messages_url = (
            f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"
        )
        self.from_number = from_number
        self.messaging_service_sid = messaging_service_sid
        self.timeout = (connect_timeout, read_timeout)
        self.session = requests.Session()
        self.session.auth = (account_sid, auth_token)

    def send(self, *, to: str, body: str, status_callback: str | None) -> SendResult:
        data = {"To": to, "Body": body}
        if self.messaging_service_sid:
            data["MessagingServiceSid"] = self.messaging_service_sid
        else:
            data["From"] = self.from_number
        if status_callback:
            data["StatusCallback"] = status_callback
        try:
            response = self.session.post(self.messages_url, data=data, timeout=self.timeout)
        except requests.exceptions.ConnectTimeout as error:
            raise GatewayError("transient", "connect_timeout", str(error)) from None
        except requests.exceptions.ReadTimeout as error:
            raise GatewayError("ambiguous", "read_timeout", str(error)) from None
        except requests.exceptions.ConnectionError as error:
            # Refused before anything was written vs. dropped after the request went out.
            if _connect_failed(error):
                raise GatewayError("transient", "connection_refused", str(error)) from None
            raise GatewayError("ambiguous", "connection_lost", str(error)) from None
        except requests.RequestException as error:
            raise GatewayError("ambiguous", "request_error", str(error)) from None
        payload = _json(response)
        if 200 <= response.status_code < 300:
            sid = payload.get("sid") if isinstance(payload, dict) else None
            if not isinstance(sid, str) or not sid:
                raise GatewayError("ambiguous", "no_message_id", "2xx answer without a sid.")
            return SendResult(provider_sid=sid, status=str(payload.get("status") or "queued"))
        raise _classify(response.status_code, payload, response.headers.get("Retry-After"))

    def lookup(self, *, to: str, body: str, since: datetime) -> str | None:
        params = {
            "To": to,
            "DateSent>": since.astimezone(UTC).date().isoformat(),
            "PageSize": "100",
        }
        try:
            response = self.session.get(self.messages_url, params=params, timeout=self.timeout)
        except requests.RequestException as error:
            raise GatewayError("transient", "lookup_failed", str(error)) from None
        payload = _json(response)
        if response.status_code != 200 or not isinstance(payload, dict):
            raise GatewayError("transient", "lookup_failed", f"HTTP {response.status_code}")
        for message in payload.get("messages") or []:
            if not isinstance(message, dict) or message.get("body") != body:
                continue
            created = _twilio_time(str(message.get("date_created") or ""))
            if created is not None and created >= since:
                return str(message.get("sid") or "") or None
        return None


def _connect_failed(error: requests.exceptions.ConnectionError) -> bool:
    text = repr(error.args[0] if error.args else error)
    return "NewConnectionError" in text or "ConnectTimeoutError" in text


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _classify(status: int, payload: Any, retry_after: str | None) -> GatewayError:
    code = str(payload.get("code") or status) if isinstance(payload, dict) else str(status)
    detail = str(payload.get("message") or "") if isinstance(payload, dict) else ""
    if status == 429 or status == 503:
        try:
            wait = float(retry_after) if retry_after else None
        except ValueError:
            wait = None
        return GatewayError("transient", code, detail or f"HTTP {status}", retry_after=wait)
    if status in (401, 403, 404):
        # Credentials or account set-up: not this message's fault; retried with backoff.
        return GatewayError("transient", code, detail or f"HTTP {status}")
    if 400 <= status < 500:
        return GatewayError("permanent", code, detail or f"HTTP {status}")
    return GatewayError("ambiguous", code, detail or f"HTTP {status}")


_cache: dict[tuple[Any, ...], Gateway] = {}
# One entry per tenant sender in use (and per change of it): emptied when it reaches this, so
# replaced tokens and numbers do not pile up in a long-lived worker.
_CACHE_MAX = 512
_cache_lock = threading.Lock()


def gateway_get() -> Gateway:
    """The configured backend with the active tenant's sender (or the deployment's), one
    instance per process and configuration. Raises ``notify.secrets.SecretUnreadableError`` /
    ``SecretKeysError`` when a tenant's stored token cannot be opened: nothing is sent with the
    wrong account."""
    backend = getattr(settings, "NOTIFY_SMS_BACKEND", "console")
    if backend not in ("twilio", "console"):
        raise ValueError(f"Unknown NOTIFY_SMS_BACKEND {backend!r}; use console or twilio.")
    sender = sender_config_get()
    if backend == "twilio":
        key: tuple[Any, ...] = (
            "twilio",
            settings.TWILIO_API_BASE,
            sender.account_sid,
            sender.auth_token,
            sender.from_number,
            sender.messaging_service_sid,
            settings.TWILIO_READ_TIMEOUT_SECONDS,
        )
    else:
        key = (
            "console",
            getattr(settings, "NOTIFY_CONSOLE_OUTPUT", "stdout"),
            sender.messaging_service_sid or sender.from_number,
        )
    with _cache_lock:
        gateway = _cache.get(key)
        if gateway is None:
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            gateway = _build(key)
            _cache[key] = gateway
        return gateway


def _build(key: tuple[Any, ...]) -> Gateway:
    if key[0] == "twilio":
        return TwilioGateway(
            api_base=key[1],
            account_sid=key[2],
            auth_token=key[3],
            from_number=key[4],
            messaging_service_sid=key[5],
            read_timeout=float(key[6]),
        )
    return ConsoleGateway(output=key[1], sender=key[2])
