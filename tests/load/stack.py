"""The load harness's own stack: a private PostgreSQL and Redis (temp dir, free loopback ports,
so the faults can stop and restart them without touching anyone else's servers), gunicorn with
2 workers, one Celery worker (queues default + sms), beat, and the fake Twilio server in this
process. Everything binds to 127.0.0.1 and is torn down by ``LoadStack.close``."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import settings  # noqa: F401  (puts platform/ on sys.path)
from settings.devstack import (
    DATABASE_NAME,
    PrivatePostgres,
    PrivateRedis,
    find_postgres_bin_dir,
    find_redis_server,
    port_is_open,
)
from tests.notify.fake_twilio import FakeTwilio

ROOT = Path(__file__).resolve().parents[2]
TWILIO_ACCOUNT, TWILIO_TOKEN = "ACload", "load-token"
# Faster sweeps and recovery than production (30 s / 600 s / 120 s) so a 60 s run can show
# them; safe here because the only worker runs one task at a time (docs/reliability.md).
SWEEP_SECONDS = 2
STUCK_AFTER_SECONDS = 5
RECONCILE_AFTER_SECONDS = 5


def say(message: str) -> None:
    sys.stdout.write(f"[load] {message}\n")
    sys.stdout.flush()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: object, *, seconds: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}")


@dataclass
class Service:
    """A child process in its own session (so a fault can SIGKILL its whole tree)."""

    name: str
    command: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> Service:
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool children): a node loss."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)

    def stop(self, timeout: float = 15) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


@dataclass
class LoadStack:
    workdir: Path
    postgres: PrivatePostgres
    redis: PrivateRedis
    fake: FakeTwilio
    web_port: int
    keep_workdir: bool = False
    services: dict[str, Service] = field(default_factory=dict)

    # --- data stores ---------------------------------------------------------------------

    @classmethod
    def create(cls, *, keep_workdir: bool = False) -> LoadStack:
        bin_dir = find_postgres_bin_dir()
        if bin_dir is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
        workdir = Path(tempfile.mkdtemp(prefix="verdant-load-"))
        workdir.chmod(0o755)  # the postgres system user must reach its data dir under it
        return cls(
            workdir=workdir,
            postgres=PrivatePostgres(data_dir=workdir, port=free_port(), bin_dir=bin_dir),
            redis=PrivateRedis(data_dir=workdir, port=free_port(), binary=find_redis_server()),
            fake=FakeTwilio(account_sid=TWILIO_ACCOUNT, auth_token=TWILIO_TOKEN),
            web_port=free_port(),
            keep_workdir=keep_workdir,
        )

    def start_data_stores(self) -> None:
        self.postgres.initialise()
        # A throwaway cluster: durability off (faster initdb/seed/restart); a "fast" stop still
        # terminates every connection, which is the fault the harness injects.
        with (self.postgres.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(
                "\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 100\n"
            )
        self.postgres.start()
        self.postgres.ensure_database(DATABASE_NAME)
        self.redis.start()
        self.fake.start()
        say(
            f"private PostgreSQL 127.0.0.1:{self.postgres.port}, Redis 127.0.0.1:"
            f"{self.redis.port}, fake Twilio {self.fake.base_url} (workdir {self.workdir})"
        )

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def env(self) -> dict[str, str]:
        """Environment of this process (for Django) and of every child."""
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OTEL_", "PYTEST_", "DATABASE_URL", "REDIS_URL", "CELERY_"))
        }
        base.update(
            {
                "DJANGO_SETTINGS_MODULE": "settings.dev",
                "DEBUG": "false",
                "DATABASE_URL": self.database_url,
                "REDIS_URL": self.redis.url,
                "CACHE_KEY_PREFIX": "verdant-load",
                "BASE_DOMAIN": "localhost",
                "LOG_LEVEL": "WARNING",
                "LOG_FORMAT": "plain",
                "TRACING_ENABLED": "false",
                "NOTIFY_SMS_BACKEND": "twilio",
                "TWILIO_API_BASE": self.fake.base_url,
                "TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT,
                "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
                "TWILIO_FROM_NUMBER": "+15005550006",
                "TWILIO_READ_TIMEOUT_SECONDS": "30",
                "REMINDER_SWEEP_SECONDS": str(SWEEP_SECONDS),
                "REMINDER_STUCK_AFTER_SECONDS": str(STUCK_AFTER_SECONDS),
                "REMINDER_RECONCILE_AFTER_SECONDS": str(RECONCILE_AFTER_SECONDS),
                "REMINDER_BATCH_SIZE": "20",
                "REMINDER_RETRY_BASE_SECONDS": "1",
                "REMINDER_RETRY_MAX_SECONDS": "5",
                # Logins are part of the mix; the per-address guard would refuse most of them.
                "LOGIN_ATTEMPTS_PER_15_MINUTES": "1000000",
                "DB_CONNECT_TIMEOUT": "2",
            }
        )
        return base

    # --- application processes -------------------------------------------------------------

    def _service(self, name: str, command: list[str], **extra_env: str) -> Service:
        service = Service(
            name=name,
            command=command,
            env={**self.env(), **extra_env},
            log=self.workdir / f"{name}.log",
        )
        self.services[name] = service
        return service

    def start_web(self) -> None:
        command = [
            sys.executable, "-m", "gunicorn", "-c", str(ROOT / "settings" / "gunicorn.conf.py"),
            "settings.wsgi:application", "--bind", f"127.0.0.1:{self.web_port}",
        ]  # fmt: skip
        web = self._service(
            "web",
            command,
            GUNICORN_WORKERS="2",
            GUNICORN_THREADS="4",
            GUNICORN_ACCESS_LOG="",
            GUNICORN_LOG_LEVEL="warning",
            GUNICORN_MAX_REQUESTS="0",
            GUNICORN_WORKER_TMP_DIR=str(self.workdir),
        ).start()
        wait_until(
            lambda: port_is_open(self.web_port) or not web.alive(), seconds=60, what="gunicorn"
        )
        if not web.alive():
            raise RuntimeError(f"gunicorn exited:\n{web.log_tail()}")

    def start_worker(self) -> Service:
        name = "worker"
        log = self.workdir / f"{name}.log"
        mark = log.stat().st_size if log.exists() else 0
        command = [
            sys.executable, "-m", "celery", "-A", "settings.celery_app", "worker",
            "-Q", "default,sms", "--concurrency", "1", "-n", f"load-{time.monotonic_ns()}@%h",
            "--without-gossip", "--without-mingle", "-l", "INFO",
        ]  # fmt: skip
        worker = self._service(name, command).start()

        def ready() -> bool:
            with log.open("rb") as fh:
                fh.seek(mark)
                return b" ready." in fh.read() or not worker.alive()

        wait_until(ready, seconds=90, what="the Celery worker")
        if not worker.alive():
            raise RuntimeError(f"celery worker exited:\n{worker.log_tail()}")
        return worker

    def start_beat(self) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "settings.celery_app", "beat", "-l", "INFO",
            "--schedule", str(self.workdir / "celerybeat-schedule"),
        ]  # fmt: skip
        self._service("beat", command).start()

    # --- faults --------------------------------------------------------------------------------

    def redis_stop(self) -> None:
        self.redis.stop()

    def redis_start(self) -> None:
        self.redis.start()

    def postgres_stop(self) -> None:
        self.postgres._run(
            "pg_ctl", "stop", "-D", str(self.postgres.pgdata), "-m", "fast", "-w", check=False
        )

    def postgres_start(self) -> None:
        self.postgres.start()

    # --- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        for service in reversed(list(self.services.values())):
            service.stop()
        with contextlib.suppress(Exception):
            self.fake.stop()
        with contextlib.suppress(Exception):
            self.redis.stop()
        with contextlib.suppress(Exception):
            self.postgres.stop()
        if self.keep_workdir:
            say(f"logs kept in {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)
