"""The supported whole-database backup, rehearsed as docs/operations.md ("Whole-database backup")
describes it, on a private PostgreSQL cluster (initdb'd here, like `make run`'s): WAL archiving
on, a base backup with pg_basebackup, pg_verifybackup of it, then a point-in-time restore to a
named restore point taken before a mistake — the rows written after the base backup and before
the mistake come back, the mistake does not."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from settings import devstack

RESTORE_POINT = "before_the_mistake"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: as root, PostgreSQL runs as 'postgres', which must reach the folder.
    path = Path(tempfile.mkdtemp(prefix="verdant-basebackup-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def _run(bin_dir: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(bin_dir / tool), *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)


def _start(bin_dir: Path, pgdata: Path, port: int, *settings: str) -> None:
    options = " ".join([f"-p {port}", f"-k {pgdata}", "-c listen_addresses=127.0.0.1", *settings])
    _run(bin_dir, "pg_ctl", "start", "-w", "-t", "60", "-D", str(pgdata), "-l",
         str(pgdata / "server.log"), "-o", options)  # fmt: skip


def _connect(port: int) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True)


def test_base_backup_verifies_and_restores_to_a_point_in_time(workdir: Path) -> None:
    bin_dir = devstack.find_postgres_bin_dir()
    assert bin_dir is not None, "PostgreSQL server binaries are required on this machine"
    archive, base = workdir / "wal-archive", workdir / "base"
    for directory in (archive, base):
        directory.mkdir(mode=0o700)
        _as_server_user(directory)
    primary = devstack.PrivatePostgres(
        data_dir=workdir / "primary", port=_free_port(), bin_dir=bin_dir
    )
    primary.initialise()
    restored_port = _free_port()
    restored = workdir / "restored"
    try:
        # Set-up: wal_level replica (the default) and every finished WAL segment archived.
        _start(bin_dir, primary.pgdata, primary.port, "-c archive_mode=on",
               f"-c archive_command='test ! -f {archive}/%f && cp %p {archive}/%f'")  # fmt: skip
        with _connect(primary.port) as conn:
            conn.execute("CREATE TABLE visits (note text)")
            conn.execute("INSERT INTO visits VALUES ('before the base backup')")

        # Taking one (initdb's pg_hba.conf has the local replication line the docs add).
        _run(bin_dir, "pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U",
             "postgres", "-D", str(base), "--checkpoint=fast", "--wal-method=stream")  # fmt: skip
        verified = _run(bin_dir, "pg_verifybackup", str(base))
        assert "successfully verified" in verified.stdout

        with _connect(primary.port) as conn:
            conn.execute("INSERT INTO visits VALUES ('after the base backup')")
            conn.execute("SELECT pg_create_restore_point(%s)", [RESTORE_POINT])
            conn.execute("DROP TABLE visits")  # the mistake
            # Close the WAL segment holding all of it, and wait until it is archived.
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
            segment = archive / str(row[0] if row else "")
            for _ in range(200):
                if segment.exists():
                    break
                time.sleep(0.1)
            assert segment.exists(), "archive_command did not archive the segment"
        _run(bin_dir, "pg_ctl", "stop", "-D", str(primary.pgdata), "-m", "fast")

        # Point-in-time restore: the base backup, the archive, a target, then promote.
        shutil.copytree(base, restored)
        _as_server_user(restored)
        for path in restored.rglob("*"):
            _as_server_user(path)
        with (restored / "postgresql.auto.conf").open("a") as conf:
            conf.write(
                f"restore_command = 'cp {archive}/%f %p'\n"
                f"recovery_target_name = '{RESTORE_POINT}'\n"
                "recovery_target_action = 'promote'\n"
            )
        (restored / "recovery.signal").touch()
        _as_server_user(restored / "recovery.signal")
        _start(bin_dir, restored, restored_port)
        with _connect(restored_port) as conn:
            for _ in range(100):
                in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if in_recovery == (False,):
                    break
                time.sleep(0.1)
            assert in_recovery == (False,), "the restored server did not promote"
            notes = [row[0] for row in conn.execute("SELECT note FROM visits ORDER BY note")]
        assert notes == ["after the base backup", "before the base backup"]
    finally:
        for pgdata in (primary.pgdata, restored):
            if (pgdata / "postmaster.pid").exists():
                subprocess.run(
                    (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])
                    + [str(bin_dir / "pg_ctl"), "stop", "-D", str(pgdata), "-m", "immediate"],
                    capture_output=True,
                    check=False,
                )
