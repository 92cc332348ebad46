"""Production settings refuse insecure configuration; `check --deploy` is clean."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k" * 20 + "Zq8#pW2!xR5@vN9$mL3^tB7&cF1*hJ4"


def _run_production(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "manage.py", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**base, "DJANGO_SETTINGS_MODULE": "settings.production", **env},
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SECRET_KEY": STRONG_KEY, "DEBUG": "true"}, "DEBUG must be off in production"),
        ({}, "SECRET_KEY is required in production"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is too weak"),
        ({"SECRET_KEY": STRONG_KEY, "DEBUG": "maybe"}, "is not a boolean"),
    ],
    ids=["debug-on", "no-secret", "weak-secret", "bad-debug-value"],
)
def test_production_refuses_insecure_configuration(env: dict[str, str], message: str) -> None:
    result = _run_production(["check"], **env)
    assert result.returncode != 0
    assert message in result.stderr


def test_check_deploy_reports_no_warnings() -> None:
    result = _run_production(
        ["check", "--deploy", "--fail-level", "WARNING"], SECRET_KEY=STRONG_KEY
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
