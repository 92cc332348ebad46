"""/healthz and /readyz answer on any host, before tenant routing."""

from typing import Any

import pytest
from django.db import connection
from django.test import Client

from apikit import health


@pytest.fixture(autouse=True)
def _recheck_migrations() -> None:
    health._migrations_ok.clear()


@pytest.mark.parametrize(
    "host", ["verdant.test", "alpha.verdant.test", "unknown.verdant.test", "10.0.0.7"]
)
def test_healthz_answers_on_any_host_without_io(
    db: None, host: str, django_assert_num_queries: object
) -> None:
    with django_assert_num_queries(0):  # type: ignore[operator]
        response = Client(HTTP_HOST=host).get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_every_check(db: None) -> None:
    response = Client(HTTP_HOST="unknown.verdant.test").get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "redis": "ok", "migrations": "ok"},
    }


def test_readyz_names_redis_when_it_is_unreachable(db: None, settings: Any) -> None:
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    response = Client(HTTP_HOST="verdant.test").get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["error"]["code"] == "not_ready"
    assert body["error"]["detail"] == "Not ready: redis check failed."
    assert body["checks"]["redis"] == "failed: ConnectionError"
    assert body["checks"]["database"] == "ok"


def test_readyz_names_unapplied_migrations(db: None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM public.django_migrations WHERE app = 'tenants' AND name = '0002_default_plans'"
        )
    response = Client(HTTP_HOST="verdant.test").get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "failed: RuntimeError"
