"""A real Celery worker process for the tests that need one: the solo pool consuming a queue of
the test's own on the real Redis broker, reading this run's test database (the rows it must see
are committed). Started, killed (SIGKILL: a crash) or stopped (SIGTERM) by the test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from django.conf import settings as django_settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]
READY_SECONDS = 60


class CeleryWorker:
    def __init__(self, *, queue: str, log: Path, env: Mapping[str, str] = {}) -> None:
        db = connection.settings_dict
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))},
            "DJANGO_SETTINGS_MODULE": "settings.test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": str(django_settings.REDIS_URL),
            "CACHE_KEY_PREFIX": str(django_settings.CACHES["default"]["KEY_PREFIX"]),
            "LOG_FORMAT": "plain",
            **(env or {}),
        }
        self.queue, self.log = queue, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "settings.celery_app", "worker",
                 "--pool", "solo", "-Q", self.queue, "-n", f"{self.queue}-{time.monotonic_ns()}@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + READY_SECONDS
        while " ready." not in self.log.read_text(errors="replace"):
            assert self.process.poll() is None, self.log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, self.log.read_text(errors="replace")[-4000:]
            time.sleep(0.1)
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
