"""The per-request platform cost on a trivial authenticated endpoint: routing from the warm
cache (no query), JWT user lookup plus django-tenants' search_path (two statements), and the
throttle's single Redis round trip (tests/apikit/test_throttling.py counts that one)."""

from tests.conftest import TenantWorld, login
from tests.query_budget import count_queries


def test_trivial_authenticated_request_costs_two_statements(alpha: TenantWorld) -> None:
    client = login(alpha)
    client.get("/api/v1/auth/me/")  # warm the routing cache
    response, statements = count_queries(lambda: client.get("/api/v1/auth/me/"))
    assert response.status_code == 200
    assert len(statements) == 2
    assert statements[0].startswith('SET search_path = "t_alpha"')
    assert 'FROM "accounts_user"' in statements[1]
