""".ci/ensure-chromium (run by `make test`, `make browser` and .ci/run) and the browser suite's
answer when chromium is missing: installed when possible, otherwise a failure, never a skip.

The machine's chromium stays installed: ``CHROMIUM`` points the check at a path that does not
exist, and ``APT_GET`` at a stand-in that records its arguments."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.browser.conftest import CHROMIUM_MISSING, chromium_path, chromium_required
from tests.devstack.ensure_scripts import executable, fake_apt_get, run_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "ensure-chromium"


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    return run_script(SCRIPT, **env)


def test_present_chromium_needs_nothing(tmp_path: Path) -> None:
    chromium = executable(tmp_path / "chromium", "exit 0")
    apt_get = fake_apt_get(tmp_path, installs=None)
    result = _run(CHROMIUM=str(chromium), APT_GET=str(apt_get))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "apt-calls").exists()


def test_missing_chromium_is_installed_as_root_after_apt_get_update(tmp_path: Path) -> None:
    chromium = tmp_path / "bin-chromium"
    apt_get = fake_apt_get(tmp_path, installs=chromium)
    result = _run(CHROMIUM=str(chromium), APT_GET=str(apt_get), ENSURE_CHROMIUM_UID="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[setup] installing Debian's chromium" in result.stdout
    calls = (tmp_path / "apt-calls").read_text().splitlines()
    assert calls[0].startswith("update")
    assert calls[1].startswith("install")
    assert calls[1].endswith(" chromium")
    assert len(calls) == 2


@pytest.mark.parametrize("fails_on", ["update", "install"])
def test_a_failed_install_stops_with_an_error(tmp_path: Path, fails_on: str) -> None:
    chromium = tmp_path / "bin-chromium"
    apt_get = fake_apt_get(tmp_path, installs=chromium, fails_on=fails_on)
    result = _run(CHROMIUM=str(chromium), APT_GET=str(apt_get), ENSURE_CHROMIUM_UID="0")
    assert result.returncode == 1
    assert f"apt-get {fails_on}" in result.stderr
    assert not chromium.exists()


def test_without_apt_get_it_says_what_to_run_and_leaves_the_failure_to_the_tests(
    tmp_path: Path,
) -> None:
    result = _run(
        CHROMIUM="/nonexistent/chromium",
        APT_GET=str(tmp_path / "no-apt-get"),
        ENSURE_CHROMIUM_UID="0",
    )
    assert result.returncode == 0
    assert result.stdout.startswith("[setup] chromium is missing")
    assert "apt-get install chromium" in result.stdout
    assert "browser tests will fail" in result.stdout


def test_not_root_it_installs_nothing(tmp_path: Path) -> None:
    chromium = tmp_path / "bin-chromium"
    apt_get = fake_apt_get(tmp_path, installs=chromium)
    result = _run(CHROMIUM=str(chromium), APT_GET=str(apt_get), ENSURE_CHROMIUM_UID="1000")
    assert result.returncode == 0
    assert "apt-get install chromium" in result.stdout
    assert not (tmp_path / "apt-calls").exists()
    assert not chromium.exists()


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


def test_ci_and_make_share_the_one_script() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert ".ci/ensure-chromium" in ci
    assert "apt-get" not in ci  # no second, forgiving copy of the install
    assert "\t@.ci/ensure-chromium" in makefile
    for target in ("test", "browser"):
        (line,) = [row for row in makefile.splitlines() if row.startswith(f"{target}: ")]
        assert "chromium" in line.split()
