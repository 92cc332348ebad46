"""Tenants' SMS provider secrets at rest: ``cryptography``'s MultiFernet under the keys in
``NOTIFY_SECRET_KEYS`` (newest first). The first key encrypts; every key decrypts, so a new key
goes in front, ``manage.py notify_secrets_rotate`` re-encrypts every stored value under it, and
only then is the old key removed (docs/sms-senders.md, "Keys and rotation").

The keys are their own setting, not derived from SECRET_KEY: rotating SECRET_KEY (sessions,
signed links) must never make stored provider tokens unreadable, and the other way round."""

from __future__ import annotations

import threading

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

KEYS_MISSING_DETAIL = (
    "NOTIFY_SECRET_KEYS is not set: a tenant's SMS auth token cannot be stored or read without "
    "it. Generate a key (docs/sms-senders.md, 'Keys and rotation') and set NOTIFY_SECRET_KEYS."
)
KEYS_INVALID_DETAIL = (
    "NOTIFY_SECRET_KEYS holds a value that is not a Fernet key (32 url-safe base64-encoded "
    "bytes); see docs/sms-senders.md."
)
UNREADABLE_DETAIL = (
    "A stored SMS auth token was encrypted under a key that is not in NOTIFY_SECRET_KEYS "
    "(removed before `manage.py notify_secrets_rotate` ran?): put the old key back at the end "
    "of the list, or enter the token again."
)


class SecretKeysError(Exception):
    """The keys are missing or malformed: an operator's configuration error."""


class SecretUnreadableError(Exception):
    """A stored value was not encrypted under any configured key (or was altered)."""

    def __init__(self) -> None:
        super().__init__(UNREADABLE_DETAIL)


_lock = threading.Lock()
_cached: tuple[tuple[str, ...], MultiFernet] | None = None


def _fernet() -> MultiFernet:
    global _cached
    keys = tuple(getattr(settings, "NOTIFY_SECRET_KEYS", ()) or ())
    if not keys:
        raise SecretKeysError(KEYS_MISSING_DETAIL)
    with _lock:
        if _cached is None or _cached[0] != keys:
            try:
                _cached = (keys, MultiFernet([Fernet(key) for key in keys]))
            except ValueError:
                raise SecretKeysError(KEYS_INVALID_DETAIL) from None
        return _cached[1]


def secret_keys_configured() -> bool:
    return bool(getattr(settings, "NOTIFY_SECRET_KEYS", ()))


def secret_encrypt(plaintext: str) -> str:
    """The value to store: a Fernet token under the newest key."""
    return _fernet().encrypt(plaintext.encode()).decode()


def secret_decrypt(stored: str) -> str:
    try:
        return _fernet().decrypt(stored.encode()).decode()
    except InvalidToken:
        raise SecretUnreadableError from None


def secret_rotate(stored: str) -> str:
    """``stored`` re-encrypted under the newest key (``MultiFernet.rotate``)."""
    try:
        return _fernet().rotate(stored.encode()).decode()
    except InvalidToken:
        raise SecretUnreadableError from None


def secret_is_current(stored: str) -> bool:
    """Whether ``stored`` already decrypts under the newest key alone (rotation skips it)."""
    _fernet()  # the keys are there and valid
    newest: str = settings.NOTIFY_SECRET_KEYS[0]
    try:
        Fernet(newest).decrypt(stored.encode())
    except InvalidToken:
        return False
    return True
