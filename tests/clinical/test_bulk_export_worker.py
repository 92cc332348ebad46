"""A Bulk Data export run by a real Celery worker process (solo pool, this run's own queue on the
real Redis broker, this run's test database): the kick-off's after-commit message carries the
tenant's schema, the worker writes the files in that schema, and the client polls to the manifest
and downloads every file."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection

from tests.clinical.bulk_world import (
    PATIENTS,
    BulkWorld,
    bulk_queue,
    bulk_tenants,
    committed_db,
    exports_clear,
)
from tests.fhir.validate import validate_fhir

__all__ = ["bulk_queue", "bulk_tenants", "committed_db"]  # fixtures, used by name

pytestmark = [pytest.mark.worker, pytest.mark.usefixtures("committed_db")]

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, *, queue: str, log: Path) -> None:
        db = connection.settings_dict
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PYTEST_"))},
            "DJANGO_SETTINGS_MODULE": "settings.test",
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "REDIS_URL": str(django_settings.REDIS_URL),
            "CACHE_KEY_PREFIX": str(django_settings.CACHES["default"]["KEY_PREFIX"]),
            "LOG_FORMAT": "plain",
        }
        self.queue, self.log = queue, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "settings.celery_app", "worker",
                 "--pool", "solo", "-Q", self.queue, "-n", f"{self.queue}@%h",
                 "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "INFO"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 60
        while " ready." not in self.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, self.log.read_text(errors="replace")[-4000:]
            time.sleep(0.1)
        return self

    @property
    def media_root(self) -> Path:
        # settings.test puts each process's files under a directory named by its pid (solo pool:
        # the task runs in the worker's main process).
        assert self.process is not None
        return Path(tempfile.gettempdir()) / f"verdant-test-media-{self.process.pid}"

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.media_root, ignore_errors=True)


@pytest.fixture
def worker(bulk_queue: str, tmp_path: Path) -> Iterator[Worker]:
    started = Worker(queue=bulk_queue, log=tmp_path / "worker.log").start()
    yield started
    started.stop()


def test_export_runs_in_a_real_worker(
    bulk_tenants: dict[str, BulkWorld], worker: Worker, settings: Any
) -> None:
    settings.FHIR_BULK_RETRY_AFTER_SECONDS = 0
    a = bulk_tenants["bulk-a"]
    exports_clear(a)
    client = a.client()
    try:
        started = client.get(
            "/fhir/R4/$export", HTTP_PREFER="respond-async", HTTP_ACCEPT="application/fhir+json"
        )
        assert started.status_code == 202, started.content
        status = urlsplit(started["Content-Location"]).path
        deadline = time.monotonic() + 60
        while (polled := client.get(status)).status_code == 202:
            assert time.monotonic() < deadline, worker.log.read_text(errors="replace")[-4000:]
            time.sleep(0.2)
        assert polled.status_code == 200, polled.content
        manifest = polled.json()
        counts = {item["type"]: item["count"] for item in manifest["output"]}
        assert counts["Patient"] == len(PATIENTS)
        # The worker wrote the files in its own file space; read them from there.
        settings.MEDIA_ROOT = worker.media_root
        everything = []
        for item in manifest["output"]:
            response = client.get(urlsplit(item["url"]).path)
            assert response.status_code == 200, response.content
            body = b"".join(cast(Any, response).streaming_content).decode()
            response.close()
            resources = [json.loads(line) for line in body.splitlines()]
            assert len(resources) == item["count"]
            assert {r["resourceType"] for r in resources} == {item["type"]}
            everything += resources
        validate_fhir(everything)
    finally:
        exports_clear(a)
