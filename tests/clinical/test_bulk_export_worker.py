"""A Bulk Data export run by a real Celery worker process (solo pool, this run's own queue on the
real Redis broker, this run's test database): the kick-off's after-commit message carries the
tenant's schema, the worker writes the files in that schema, and the client polls to the manifest
and downloads every file."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import pytest

from tests.celery_worker import CeleryWorker
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


class Worker(CeleryWorker):
    @property
    def media_root(self) -> Path:
        # settings.test puts each process's files under a directory named by its pid (solo pool:
        # the task runs in the worker's main process).
        assert self.process is not None
        return Path(tempfile.gettempdir()) / f"verdant-test-media-{self.process.pid}"

    def stop(self) -> None:
        super().stop()
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
