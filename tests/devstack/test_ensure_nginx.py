""".ci/ensure-nginx (run by `make test` and .ci/run for the cells suite's edge proxy): nginx
found -> nothing; missing as root -> apt-get update + install nginx-light; otherwise a message and
exit 1 (and the edge-proxy test fails saying the same). ``NGINX`` points the check at a path and
``APT_GET`` at a stand-in that records its arguments, so the machine's nginx is never touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.devstack.ensure_scripts import executable, fake_apt_get, run_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "ensure-nginx"


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    return run_script(SCRIPT, **env)


def test_present_nginx_needs_nothing(tmp_path: Path) -> None:
    nginx = executable(tmp_path / "nginx", "exit 0")
    result = _run(NGINX=str(nginx), APT_GET=str(fake_apt_get(tmp_path, installs=nginx)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "apt-calls").exists()


def test_missing_nginx_is_installed_as_root(tmp_path: Path) -> None:
    nginx = tmp_path / "bin-nginx"
    apt_get = fake_apt_get(tmp_path, installs=nginx)
    result = _run(NGINX=str(nginx), APT_GET=str(apt_get), ENSURE_NGINX_UID="0")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (tmp_path / "apt-calls").read_text().splitlines()
    assert calls[0].startswith("update")
    assert calls[1].startswith("install")
    assert calls[1].endswith(" nginx-light")
    assert nginx.exists()


@pytest.mark.parametrize("fails_on", ["update", "install"])
def test_a_failed_install_stops_with_an_error(tmp_path: Path, fails_on: str) -> None:
    nginx = tmp_path / "bin-nginx"
    apt_get = fake_apt_get(tmp_path, installs=nginx, fails_on=fails_on)
    result = _run(NGINX=str(nginx), APT_GET=str(apt_get), ENSURE_NGINX_UID="0")
    assert result.returncode == 1
    assert f"apt-get {fails_on}" in result.stderr


def test_not_root_it_says_what_to_run_and_fails(tmp_path: Path) -> None:
    nginx = tmp_path / "bin-nginx"
    apt_get = fake_apt_get(tmp_path, installs=nginx)
    result = _run(NGINX=str(nginx), APT_GET=str(apt_get), ENSURE_NGINX_UID="1000")
    assert result.returncode == 1
    assert "apt-get install nginx-light" in result.stdout
    assert not (tmp_path / "apt-calls").exists()


def test_make_test_and_ci_run_use_the_script() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "\t@.ci/ensure-nginx" in makefile
    assert any(
        line.startswith("test:") and line.rstrip().endswith(" nginx")
        for line in makefile.splitlines()
    )
    assert ".ci/ensure-nginx" in (ROOT / ".ci" / "run").read_text()
