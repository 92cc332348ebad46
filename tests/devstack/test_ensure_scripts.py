"""The .ci/ensure-* install scripts, one body (.ci/ensure-package.sh) for three programs:
chromium (the browser suite; `make test`, `make browser`, .ci/run), nginx (the cells suite's
edge proxy; `make test`, .ci/run) and pgbouncer (the tenant_memory benchmark).

Found -> nothing; missing as root -> apt-get update + install; a failed step -> exit 1;
otherwise one line saying what to run (chromium: exit 0, the browser tests then fail, never
skip; nginx and pgbouncer: exit 1). ``CHROMIUM`` / ``NGINX`` / ``PGBOUNCER`` point the check at
a path and ``APT_GET`` at a stand-in that records its arguments, so the machine's packages are
never touched."""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM_MISSING, chromium_path, chromium_required

ROOT = Path(__file__).resolve().parents[2]
Result = subprocess.CompletedProcess[str]


@dataclass(frozen=True)
class Script:
    name: str
    package: str
    unavailable_exit: int  # missing and not installable here (not root, or no apt-get)
    unavailable_note: str = ""  # what that line says happens next, before the advice

    @property
    def path(self) -> Path:
        return ROOT / ".ci" / f"ensure-{self.name}"

    def run(self, *, executable: Path | str, apt_get: Path, uid: str | None = None) -> Result:
        env = {self.name.upper(): str(executable), "APT_GET": str(apt_get)}
        if uid is not None:
            env[f"ENSURE_{self.name.upper()}_UID"] = uid
        return subprocess.run(
            [str(self.path)],
            env={"PATH": os.environ["PATH"], **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def unavailable_line(self) -> str:
        return (
            f"[setup] {self.name} is missing and cannot be installed here (not root, or no"
            f" apt-get): {self.unavailable_note}install it with: apt-get install {self.package}\n"
        )


SCRIPTS = [
    Script("chromium", "chromium", 0, unavailable_note="the browser tests will fail; "),
    Script("nginx", "nginx-light", 1),
    Script("pgbouncer", "pgbouncer", 1),
]


@pytest.fixture(params=SCRIPTS, ids=[script.name for script in SCRIPTS])
def script(request: pytest.FixtureRequest) -> Script:
    return request.param


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


def test_present_program_needs_nothing(tmp_path: Path, script: Script) -> None:
    program = executable(tmp_path / script.name, "exit 0")
    result = script.run(executable=program, apt_get=fake_apt_get(tmp_path, installs=program))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "apt-calls").exists()


def test_missing_program_is_installed_as_root_after_apt_get_update(
    tmp_path: Path, script: Script
) -> None:
    program = tmp_path / f"bin-{script.name}"
    apt_get = fake_apt_get(tmp_path, installs=program)
    result = script.run(executable=program, apt_get=apt_get, uid="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"[setup] installing Debian's {script.name}" in result.stdout
    calls = (tmp_path / "apt-calls").read_text().splitlines()
    assert calls[0].startswith("update")
    assert calls[1].startswith("install")
    assert calls[1].endswith(f" {script.package}")
    assert len(calls) == 2
    assert program.exists()


@pytest.mark.parametrize("fails_on", ["update", "install"])
def test_a_failed_install_stops_with_an_error(
    tmp_path: Path, script: Script, fails_on: str
) -> None:
    program = tmp_path / f"bin-{script.name}"
    apt_get = fake_apt_get(tmp_path, installs=program, fails_on=fails_on)
    result = script.run(executable=program, apt_get=apt_get, uid="0")
    assert result.returncode == 1
    assert f"apt-get {fails_on}" in result.stderr
    assert not program.exists()


def test_installed_but_still_missing_is_an_error(tmp_path: Path, script: Script) -> None:
    program = tmp_path / f"bin-{script.name}"
    result = script.run(executable=program, apt_get=fake_apt_get(tmp_path, installs=None), uid="0")
    assert result.returncode == 1
    assert f"{program} is still not there" in result.stderr


def test_not_root_it_says_what_to_run_and_installs_nothing(tmp_path: Path, script: Script) -> None:
    program = tmp_path / f"bin-{script.name}"
    apt_get = fake_apt_get(tmp_path, installs=program)
    result = script.run(executable=program, apt_get=apt_get, uid="1000")
    assert result.returncode == script.unavailable_exit
    assert f"apt-get install {script.package}" in result.stdout
    assert result.stdout == script.unavailable_line()
    assert not (tmp_path / "apt-calls").exists()
    assert not program.exists()


def test_without_apt_get_it_says_what_to_run(tmp_path: Path, script: Script) -> None:
    result = script.run(
        executable=f"/nonexistent/{script.name}", apt_get=tmp_path / "no-apt-get", uid="0"
    )
    assert result.returncode == script.unavailable_exit
    assert result.stdout.startswith(f"[setup] {script.name} is missing")
    assert f"apt-get install {script.package}" in result.stdout
    assert result.stdout == script.unavailable_line()


def test_the_scripts_share_one_body() -> None:
    for script in SCRIPTS:
        text = script.path.read_text()
        assert "ensure-package.sh" in text, script.name
        assert "apt-get update" not in text.split("set -uo pipefail", 1)[1], script.name


# --- who runs them ---------------------------------------------------------------------------


def test_ci_and_make_share_the_one_chromium_script() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert ".ci/ensure-chromium" in ci
    assert "apt-get" not in ci  # no second, forgiving copy of the install
    assert "\t@.ci/ensure-chromium" in makefile
    for target in ("test", "browser"):
        (line,) = [row for row in makefile.splitlines() if row.startswith(f"{target}: ")]
        assert "chromium" in line.split()


def test_make_test_and_ci_run_use_the_nginx_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "\t@.ci/ensure-nginx" in makefile
    assert any(
        line.startswith("test:") and line.rstrip().endswith(" nginx")
        for line in makefile.splitlines()
    )
    assert ".ci/ensure-nginx" in (ROOT / ".ci" / "run").read_text()


def test_the_benchmark_uses_the_pgbouncer_script() -> None:
    bench = (ROOT / "tests" / "benchmarks" / "bench_tenant_memory.py").read_text()
    assert '".ci" / "ensure-pgbouncer"' in bench


# --- the browser suite's side: chromium missing is a failure, never a skip --------------------


def test_the_browser_suite_fails_without_chromium(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHROMIUM", "/nonexistent/chromium")
    assert chromium_path() is None
    with pytest.raises(pytest.fail.Exception) as failure:
        chromium_required()
    assert "apt-get install chromium" in str(failure.value)
    assert CHROMIUM_MISSING in str(failure.value)


def test_the_browser_suite_uses_the_configured_chromium(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    chromium = executable(tmp_path / "chromium", "exit 0")
    monkeypatch.setenv("CHROMIUM", str(chromium))
    assert chromium_required() == str(chromium)
