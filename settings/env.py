"""Typed readers for deployment settings taken from the environment."""

import os

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Set the {name} environment variable.")
    return value


def env_bool(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false.")


def env_int(name: str, *, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None


def env_list(name: str, *, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


LOG_FORMATS = {"json": "json", "text": "plain", "plain": "plain"}


def log_formatter(raw: str, *, terminal: bool) -> str:
    """The LOGGING formatter for ``LOG_FORMAT``: "json" or "plain" (``text`` and ``plain`` are one
    format). Unset or empty: plain when the log stream is a terminal, else json."""
    if not raw:
        return "plain" if terminal else "json"
    try:
        return LOG_FORMATS[raw.strip().lower()]
    except KeyError:
        raise ImproperlyConfigured(
            f"LOG_FORMAT={raw!r} is not a log format; use text or json."
        ) from None
