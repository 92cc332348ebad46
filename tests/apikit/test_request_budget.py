"""The per-request platform cost on a trivial authenticated endpoint: routing from the warm
cache (no query), the JWT user lookup (one statement; the search_path is only re-sent when the
connection last served another tenant), and the throttle's single Redis round trip
(tests/apikit/test_throttling.py counts that one)."""

from tests.conftest import TenantWorld, login
from tests.query_budget import count_queries


def test_trivial_authenticated_request_costs_at_most_two_statements(
    alpha: TenantWorld, beta: TenantWorld
) -> None:
    client = login(alpha)
    client.get("/api/v1/auth/me/")  # warm the routing cache
    response, statements = count_queries(lambda: client.get("/api/v1/auth/me/"))
    assert response.status_code == 200
    assert len(statements) == 1
    assert 'FROM "accounts_user"' in statements[0]

    login(beta).get("/api/v1/auth/me/")  # the connection now holds beta's path
    _, after_switch = count_queries(lambda: client.get("/api/v1/auth/me/"))
    assert len(after_switch) == 2
    assert after_switch[0].startswith('SET search_path = "t_alpha"')
