""".ci/ensure-pgbouncer (run by the tenant_memory benchmark before its PgBouncer set-ups):
pgbouncer found -> nothing; missing as root -> apt-get update + install; otherwise a message and
exit 1 (the benchmark stops saying so). ``PGBOUNCER`` points the check at a path and ``APT_GET``
at a stand-in that records its arguments, so the machine's pgbouncer is never touched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.devstack.ensure_scripts import executable, fake_apt_get, run_script

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "ensure-pgbouncer"


def _run(**env: str) -> subprocess.CompletedProcess[str]:
    return run_script(SCRIPT, **env)


def test_present_pgbouncer_needs_nothing(tmp_path: Path) -> None:
    pgbouncer = executable(tmp_path / "pgbouncer", "exit 0")
    result = _run(PGBOUNCER=str(pgbouncer), APT_GET=str(fake_apt_get(tmp_path, installs=pgbouncer)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "apt-calls").exists()


def test_missing_pgbouncer_is_installed_as_root(tmp_path: Path) -> None:
    pgbouncer = tmp_path / "bin-pgbouncer"
    apt_get = fake_apt_get(tmp_path, installs=pgbouncer)
    result = _run(PGBOUNCER=str(pgbouncer), APT_GET=str(apt_get), ENSURE_PGBOUNCER_UID="0")
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (tmp_path / "apt-calls").read_text().splitlines()
    assert calls[0].startswith("update")
    assert calls[1].startswith("install")
    assert calls[1].endswith(" pgbouncer")
    assert pgbouncer.exists()


@pytest.mark.parametrize("fails_on", ["update", "install"])
def test_a_failed_install_stops_with_an_error(tmp_path: Path, fails_on: str) -> None:
    pgbouncer = tmp_path / "bin-pgbouncer"
    apt_get = fake_apt_get(tmp_path, installs=pgbouncer, fails_on=fails_on)
    result = _run(PGBOUNCER=str(pgbouncer), APT_GET=str(apt_get), ENSURE_PGBOUNCER_UID="0")
    assert result.returncode == 1
    assert f"apt-get {fails_on}" in result.stderr


def test_not_root_it_says_what_to_run_and_fails(tmp_path: Path) -> None:
    pgbouncer = tmp_path / "bin-pgbouncer"
    apt_get = fake_apt_get(tmp_path, installs=pgbouncer)
    result = _run(PGBOUNCER=str(pgbouncer), APT_GET=str(apt_get), ENSURE_PGBOUNCER_UID="1000")
    assert result.returncode == 1
    assert "apt-get install pgbouncer" in result.stdout
    assert not (tmp_path / "apt-calls").exists()


def test_the_benchmark_uses_the_script() -> None:
    bench = (ROOT / "tests" / "benchmarks" / "bench_tenant_memory.py").read_text()
    assert '".ci" / "ensure-pgbouncer"' in bench
