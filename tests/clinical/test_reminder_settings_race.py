"""Reminder settings under real concurrency (issue 19, item 4): committed rows, threads, separate
connections. Several first saves at once, all naming version 0: exactly one creates the row, the
others get 409 ``version_conflict`` (the row lock, or the unique ``singleton`` caught in a
savepoint when their INSERT raced the winner's)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
from django.db import connection, transaction
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from clinical.models import ReminderSettings
from tenants.models import Tenant
from tenants.services import tenant_drop, tenant_host, tenant_provision

SLUG = "settingsrace"
EMAIL = "admin@settingsrace.example"
PASSWORD = "race-Password-1"
URL = "/api/v1/clinical/reminders/settings/"


@pytest.fixture(scope="module")
def committed_tenant(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[str]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        tenant_provision(
            slug=SLUG,
            name="Settings race",
            kind="clinic",
            admin_email=EMAIL,
            admin_password=PASSWORD,
        )
        try:
            yield tenant_host(SLUG)
        finally:
            connection.close()
            tenant_drop(slug=SLUG)


def test_concurrent_first_saves_create_exactly_one_row(
    committed_tenant: str, django_db_blocker: pytest.FixtureRequest
) -> None:
    host = committed_tenant
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        token = (
            APIClient(HTTP_HOST=host)
            .post("/api/v1/auth/token/", {"email": EMAIL, "password": PASSWORD}, format="json")
            .json()["access"]
        )
        threads_count = 6
        barrier = threading.Barrier(threads_count)
        statuses: list[int] = []
        codes: list[str] = []
        lock = threading.Lock()

        def fire(n: int) -> None:
            client = APIClient(HTTP_HOST=host)
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            body = {
                "enabled": True,
                "kinds": [{"kind": f"k{n}", "minutes_before": 60 + n}],
                "template": f"Writer {n}: {{local_time}}",
                "quiet_start": "21:00",
                "quiet_end": "07:00",
                "version": 0,
            }
            barrier.wait()
            try:
                response = client.put(URL, body, format="json")
            finally:
                connection.close()
            with lock:
                statuses.append(response.status_code)
                if response.status_code != 200:
                    codes.append(response.json()["error"]["code"])

        threads = [threading.Thread(target=fire, args=(i,)) for i in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        with tenant_context(Tenant.objects.get(slug=SLUG)):
            rows = list(ReminderSettings.objects.values_list("version", flat=True))
    assert rows == [1]
    assert Counter(statuses) == {200: 1, 409: threads_count - 1}
    assert set(codes) == {"version_conflict"}


def test_a_first_save_that_loses_the_insert_race_is_a_409_not_a_500(
    committed_tenant: str, django_db_blocker: pytest.FixtureRequest
) -> None:
    """Deterministic: another transaction has inserted the row but not committed, so this PUT
    finds no row to lock and its INSERT waits on the unique ``singleton``; the other commits, the
    INSERT fails, and the savepoint turns it into 409 (checked in pg_stat_activity: the PUT's
    INSERT really was waiting on the lock)."""
    host = committed_tenant
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        tenant = Tenant.objects.get(slug=SLUG)
        with tenant_context(tenant):
            ReminderSettings.objects.all().delete()
        token = (
            APIClient(HTTP_HOST=host)
            .post("/api/v1/auth/token/", {"email": EMAIL, "password": PASSWORD}, format="json")
            .json()["access"]
        )
        inserted, release = threading.Event(), threading.Event()
        answers: list[tuple[int, str]] = []

        def other_writer() -> None:
            try:
                with tenant_context(tenant), transaction.atomic():
                    ReminderSettings.objects.create(template="Other {kind}")
                    inserted.set()
                    release.wait(timeout=30)
            finally:
                connection.close()

        def put() -> None:
            client = APIClient(HTTP_HOST=host)
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            body = {
                "enabled": True,
                "kinds": [],
                "template": "Mine {kind}",
                "quiet_start": "21:00",
                "quiet_end": "07:00",
                "version": 0,
            }
            try:
                response = client.put(URL, body, format="json")
            finally:
                connection.close()
            answers.append((response.status_code, response.json().get("error", {}).get("code")))

        writer = threading.Thread(target=other_writer)
        writer.start()
        assert inserted.wait(timeout=30)
        putter = threading.Thread(target=put)
        putter.start()
        waiting = False
        for _ in range(300):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND query LIKE 'INSERT INTO \"clinical_remindersettings\"%%'"
                )
                waiting = cursor.fetchone()[0] == 1
            if waiting:
                break
            time.sleep(0.05)
        release.set()
        writer.join(timeout=30)
        putter.join(timeout=30)
        with tenant_context(tenant):
            templates = list(ReminderSettings.objects.values_list("template", flat=True))
    assert waiting
    assert answers == [(409, "version_conflict")]
    assert templates == ["Other {kind}"]
