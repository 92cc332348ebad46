"""LOG_FORMAT: plain text to a terminal (`make run`), JSON lines otherwise and in production."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from settings.env import log_formatter

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = "k" * 20 + "Zq8#pW2!xR5@vN9$mL3^tB7&cF1*hJ4"
LOG_ONE_LINE = (
    "import logging, django; django.setup(); "
    "from django.conf import settings; "
    "print(settings.LOGGING['handlers']['console']['formatter'], flush=True); "
    "logging.getLogger('verdant.check').warning('hello from %s', 'devstack')"
)


@pytest.mark.parametrize(
    ("raw", "terminal", "expected"),
    [
        ("", True, "plain"),
        ("", False, "json"),
        ("text", False, "plain"),
        ("plain", False, "plain"),
        ("TEXT", False, "plain"),
        ("json", True, "json"),
    ],
)
def test_the_format_follows_the_variable_else_the_terminal(
    raw: str, terminal: bool, expected: str
) -> None:
    assert log_formatter(raw, terminal=terminal) == expected


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT='xml'"):
        log_formatter("xml", terminal=True)


def _log_once(settings_module: str, *, terminal: bool, **env: str) -> tuple[str, str]:
    """The formatter the settings chose and what one warning looked like on stderr."""
    base = {
        key: value
        for key, value in os.environ.items()
        if key not in {"LOG_FORMAT", "SECRET_KEY", "DEBUG", "PYTEST_CURRENT_TEST"}
    }
    command = [sys.executable, "-c", LOG_ONE_LINE]
    full_env = {**base, "DJANGO_SETTINGS_MODULE": settings_module, **env}
    if not terminal:
        result = subprocess.run(
            command, cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip(), result.stderr.strip()
    primary, secondary = pty.openpty()
    try:
        process = subprocess.Popen(
            command, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=secondary, text=True
        )
        os.close(secondary)
        chunks: list[bytes] = []
        while True:
            ready, _, _ = select.select([primary], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child closed its end
                break
            if not chunk:
                break
            chunks.append(chunk)
        stdout, _ = process.communicate(timeout=60)
        assert process.returncode == 0, b"".join(chunks).decode()
    finally:
        os.close(primary)
    return stdout.strip(), b"".join(chunks).decode().strip()


def test_make_run_logs_plain_text_to_a_terminal() -> None:
    formatter, line = _log_once("settings.dev", terminal=True)
    assert formatter == "plain"
    assert "WARNING verdant.check" in line
    assert line.endswith("hello from devstack")
    assert not line.startswith("{")


def test_make_run_logs_json_when_stderr_is_not_a_terminal() -> None:
    formatter, line = _log_once("settings.dev", terminal=False)
    assert formatter == "json"
    record = json.loads(line.splitlines()[-1])
    assert record["message"] == "hello from devstack"
    assert record["level"] == "WARNING"


def test_log_format_text_overrides_the_pipe() -> None:
    formatter, line = _log_once("settings.dev", terminal=False, LOG_FORMAT="text")
    assert formatter == "plain"
    assert line.endswith("hello from devstack")


def test_production_logs_json_even_to_a_terminal() -> None:
    formatter, line = _log_once("settings.production", terminal=True, SECRET_KEY=STRONG_KEY)
    assert formatter == "json"
    assert json.loads(line.splitlines()[-1])["message"] == "hello from devstack"
