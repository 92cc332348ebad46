"""Shared by the tests of the .ci/ensure-* install scripts: run one with a bare environment, and
stand-ins (an executable that records its arguments) for apt-get, so the machine's packages are
never touched."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path


def run_script(script: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(script)],
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def executable(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_apt_get(tmp_path: Path, *, installs: Path | None, fails_on: str = "") -> Path:
    """apt-get that logs its arguments to ``tmp_path/apt-calls``, fails on ``fails_on`` and, on
    ``install``, creates ``installs`` as an executable (``None``: installs nothing)."""
    log = tmp_path / "apt-calls"
    create = f'touch "{installs}" && chmod +x "{installs}"' if installs else "true"
    return executable(
        tmp_path / "apt-get",
        f'echo "$*" >> "{log}"\n'
        f'[ "$1" = "{fails_on}" ] && exit 100\n'
        f'[ "$1" = install ] && {{ {create}; }}\n'
        "exit 0",
    )
