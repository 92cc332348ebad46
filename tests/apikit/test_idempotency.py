"""Idempotency-Key on POST: replay, reuse, in-flight, failure release, real concurrency."""

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.db.models.functions import Now
from django.utils import timezone
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.models import User
from apikit.idempotency import CLAIM_TIMEOUT, _claim, idempotency_records_purge
from apikit.models import IdempotencyRecord
from tenants.services import tenant_drop, tenant_host, tenant_provision
from tests.apikit.conftest import ToyWorld
from tests.apikit.toy.models import Item, Site
from tests.conftest import login

pytestmark = pytest.mark.urls("tests.apikit.urls")
URL = "/api/v1/toy/items/"


def _payload(world: ToyWorld, name: str = "spade") -> dict[str, object]:
    return {"site": str(world.site.pk), "name": name, "quantity": 1}


def test_same_key_and_body_replays_the_first_response(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    first = client.post(URL, _payload(toy_alpha), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    again = client.post(URL, _payload(toy_alpha), format="json", HTTP_IDEMPOTENCY_KEY="abc")
    assert first.status_code == again.status_code == 201
    assert again.content == first.content
    assert again["Idempotent-Replayed"] == "true"
    assert again["ETag"] == first["ETag"]
    assert not first.has_header("Idempotent-Replayed")
    with tenant_context(toy_alpha.world.tenant):
        assert Item.objects.filter(name="spade").count() == 1


def test_keys_are_per_user_and_per_tenant(toy_alpha: ToyWorld, toy_beta: ToyWorld) -> None:
    alpha_client, beta_client = login(toy_alpha.world), login(toy_beta.world)
    assert (
        alpha_client.post(
            URL, _payload(toy_alpha), format="json", HTTP_IDEMPOTENCY_KEY="same"
        ).status_code
        == 201
    )
    beta = beta_client.post(URL, _payload(toy_beta), format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert beta.status_code == 201
    assert not beta.has_header("Idempotent-Replayed")
    with tenant_context(toy_beta.world.tenant):
        assert Item.objects.filter(name="spade").count() == 1
        assert IdempotencyRecord.objects.count() == 1


@pytest.fixture(
    params=[timedelta(0), timedelta(seconds=-60)], ids=["app-clock-in-step", "app-clock-60s-behind"]
)
def app_clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> timedelta:
    """Run the test with the app server's clock in step with the database's, then 60 s behind
    it: claims are judged on the database's clock only, so every outcome is the same."""
    offset: timedelta = request.param
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)
    return offset


def _server_started() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_postmaster_start_time()")
        started: datetime = cursor.fetchone()[0]
    return started


def _claim_left_in_progress(world: ToyWorld, *, key: str, locked_for: timedelta) -> None:
    """Make ``key``'s record look like a request still running (or one that died mid-way) on
    this PostgreSQL server, its claim holding for ``locked_for`` more on the database's clock."""
    client = login(world.world)
    assert (
        client.post(
            URL, _payload(world, "first"), format="json", HTTP_IDEMPOTENCY_KEY=key
        ).status_code
        == 201
    )
    with tenant_context(world.world.tenant):
        Item.objects.filter(name="first").delete()
        IdempotencyRecord.objects.filter(key=key).update(
            state=IdempotencyRecord.State.IN_PROGRESS,
            response_status=None,
            response_body=None,
            locked_until=Now() + locked_for,
        )


def test_in_flight_duplicate_is_409(toy_alpha: ToyWorld, app_clock: timedelta) -> None:
    """Same server start, claim still held: 409, however long ago PostgreSQL started."""
    _claim_left_in_progress(toy_alpha, key="busy", locked_for=timedelta(seconds=30))
    response = login(toy_alpha.world).post(
        URL, _payload(toy_alpha, "first"), format="json", HTTP_IDEMPOTENCY_KEY="busy"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
    with tenant_context(toy_alpha.world.tenant):
        assert not Item.objects.filter(name="first").exists()


def test_abandoned_claim_is_taken_over_after_its_timeout(
    toy_alpha: ToyWorld, app_clock: timedelta
) -> None:
    _claim_left_in_progress(toy_alpha, key="stale", locked_for=timedelta(seconds=-1))
    response = login(toy_alpha.world).post(
        URL, _payload(toy_alpha, "first"), format="json", HTTP_IDEMPOTENCY_KEY="stale"
    )
    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    with tenant_context(toy_alpha.world.tenant):
        assert Item.objects.filter(name="first").count() == 1
        assert IdempotencyRecord.objects.get(key="stale").state == IdempotencyRecord.State.COMPLETED


def test_claim_made_on_another_server_is_taken_over_at_once(
    toy_alpha: ToyWorld, app_clock: timedelta
) -> None:
    """A request that died with the database (its claim could not be released) does not block
    the client's retry for the claim timeout: no transaction survives a PostgreSQL restart or a
    failover. The claim's stored server start differs from the current one (here: older, as
    after a restart). Found by the load harness (tests/load, PostgreSQL restart phase)."""
    _claim_left_in_progress(toy_alpha, key="pre-restart", locked_for=CLAIM_TIMEOUT)
    started = _server_started()
    with tenant_context(toy_alpha.world.tenant):
        IdempotencyRecord.objects.filter(key="pre-restart").update(
            server_started_at=started - timedelta(hours=1)
        )
    response = login(toy_alpha.world).post(
        URL, _payload(toy_alpha, "first"), format="json", HTTP_IDEMPOTENCY_KEY="pre-restart"
    )
    assert response.status_code == 201
    assert not response.has_header("Idempotent-Replayed")
    with tenant_context(toy_alpha.world.tenant):
        assert Item.objects.filter(name="first").count() == 1
        record = IdempotencyRecord.objects.get(key="pre-restart")
        assert record.state == IdempotencyRecord.State.COMPLETED
        assert record.server_started_at == started  # the takeover recorded the current server


def test_a_claim_taken_over_after_a_restart_is_not_taken_over_again(
    toy_alpha: ToyWorld, app_clock: timedelta
) -> None:
    """The takeover stores the current server's start: a second retry arriving while the
    takeover runs gets 409."""
    _claim_left_in_progress(toy_alpha, key="taken-over", locked_for=CLAIM_TIMEOUT)
    started = _server_started()
    with tenant_context(toy_alpha.world.tenant):
        IdempotencyRecord.objects.filter(key="taken-over").update(
            server_started_at=started - timedelta(hours=1)
        )
        dead = IdempotencyRecord.objects.get(key="taken-over")
        claimed = _claim(
            user_id=dead.user_id, key="taken-over", request_fingerprint=dead.request_fingerprint
        )
        assert isinstance(claimed, int)  # taken over, its handler "still running"
        assert IdempotencyRecord.objects.get(pk=claimed).server_started_at == started
    response = login(toy_alpha.world).post(
        URL, _payload(toy_alpha, "first"), format="json", HTTP_IDEMPOTENCY_KEY="taken-over"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_in_use"
    with tenant_context(toy_alpha.world.tenant):
        assert not Item.objects.filter(name="first").exists()


def test_a_claim_is_held_on_the_database_clock(toy_alpha: ToyWorld, app_clock: timedelta) -> None:
    """The claiming INSERT stores the database's now() + the timeout and the current server's
    start, whatever the app server's clock says."""
    with tenant_context(toy_alpha.world.tenant):
        claimed = _claim(user_id=toy_alpha.admin.pk, key="clock", request_fingerprint="f")
        assert isinstance(claimed, int)
        record = IdempotencyRecord.objects.annotate(db_now=Now()).get(pk=claimed)
    held_for = record.locked_until - record.db_now
    assert CLAIM_TIMEOUT - timedelta(seconds=5) < held_for <= CLAIM_TIMEOUT
    assert record.server_started_at == _server_started()


def test_failed_request_releases_the_key_and_writes_nothing(toy_alpha: ToyWorld) -> None:
    client = login(toy_alpha.world)
    bad = {**_payload(toy_alpha), "quantity": -5}
    assert client.post(URL, bad, format="json", HTTP_IDEMPOTENCY_KEY="retry-me").status_code == 400
    with tenant_context(toy_alpha.world.tenant):
        assert not IdempotencyRecord.objects.filter(key="retry-me").exists()
    fixed = client.post(URL, _payload(toy_alpha), format="json", HTTP_IDEMPOTENCY_KEY="retry-me")
    assert fixed.status_code == 201


def test_invalid_key_is_400(toy_alpha: ToyWorld) -> None:
    response = login(toy_alpha.world).post(
        URL, _payload(toy_alpha), format="json", HTTP_IDEMPOTENCY_KEY="k" * 256
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"


def test_purge_removes_only_records_past_retention(toy_alpha: ToyWorld, toy_beta: ToyWorld) -> None:
    for world in (toy_alpha, toy_beta):
        with tenant_context(world.world.tenant):
            old = IdempotencyRecord.objects.create(
                user_id=world.admin.pk,
                key="old",
                request_fingerprint="f",
                locked_until=timezone.now(),
            )
            IdempotencyRecord.objects.filter(pk=old.pk).update(
                created_at=timezone.now() - timedelta(hours=25)
            )
            IdempotencyRecord.objects.create(
                user_id=world.admin.pk,
                key="new",
                request_fingerprint="f",
                locked_until=timezone.now(),
            )
    with tenant_context(toy_alpha.world.tenant):
        assert idempotency_records_purge() == 1
        assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]
    with tenant_context(toy_beta.world.tenant):
        assert IdempotencyRecord.objects.count() == 2


def test_purge_task_covers_every_tenant(toy_alpha: ToyWorld, toy_beta: ToyWorld) -> None:
    from apikit.tasks import idempotency_records_purge_all

    for world in (toy_alpha, toy_beta):
        with tenant_context(world.world.tenant):
            record = IdempotencyRecord.objects.create(
                user_id=world.admin.pk,
                key="old",
                request_fingerprint="f",
                locked_until=timezone.now(),
            )
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                created_at=timezone.now() - timedelta(days=2)
            )
    assert idempotency_records_purge_all.apply().get() == 2
    for world in (toy_alpha, toy_beta):
        with tenant_context(world.world.tenant):
            assert not IdempotencyRecord.objects.exists()


# --- real concurrency: committed data, real threads, separate connections --------------------


@pytest.fixture(scope="module")
def committed_tenant(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[tuple[str, str]]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        tenant = tenant_provision(
            slug="idem",
            name="Idem",
            kind="mixed",
            admin_email="admin@idem.example",
            admin_password="idem-Password-1",
        ).tenant
        with tenant_context(tenant):
            site = Site.objects.create(name="committed")
        yield tenant_host("idem"), str(site.pk)
        tenant_drop(slug="idem")


def test_parallel_identical_requests_create_exactly_one_row(
    committed_tenant: tuple[str, str], django_db_blocker: pytest.FixtureRequest
) -> None:
    host, site_id = committed_tenant
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        token = (
            APIClient(HTTP_HOST=host)
            .post(
                "/api/v1/auth/token/",
                {"email": "admin@idem.example", "password": "idem-Password-1"},
                format="json",
            )
            .json()["access"]
        )
        barrier = threading.Barrier(8)
        statuses: list[int] = []
        replayed: list[bool] = []
        lock = threading.Lock()

        def fire() -> None:
            client = APIClient(HTTP_HOST=host)
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
            barrier.wait()
            try:
                response = client.post(
                    URL,
                    {"site": site_id, "name": "parallel", "quantity": 1},
                    format="json",
                    HTTP_IDEMPOTENCY_KEY="one-key",
                )
            finally:
                connection.close()
            with lock:
                statuses.append(response.status_code)
                replayed.append(response.has_header("Idempotent-Replayed"))

        threads = [threading.Thread(target=fire) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        from tenants.models import Tenant

        with tenant_context(Tenant.objects.get(slug="idem")):
            assert Item.objects.filter(name="parallel").count() == 1
            assert User.objects.count() == 1
    counts = Counter(statuses)
    assert set(counts) <= {201, 409}
    assert counts[201] >= 1
    assert counts[201] - sum(replayed) == 1  # exactly one request really ran the write
