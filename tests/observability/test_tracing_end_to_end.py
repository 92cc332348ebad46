"""End to end through the production entry points: a gunicorn web process and a Celery worker
export to a real OTLP/HTTP receiver; the spans, their parentage, their tenant tags, the error
envelope's trace id and the JSON log lines are checked as a collector would see them."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from django_tenants.utils import tenant_context

from accounts.models import User
from tenants.models import Tenant
from tenants.services import tenant_host
from tests.conftest import ADMIN_EMAIL, CLINICIAN_EMAIL, PASSWORDS
from tests.observability.conftest import TracedStack
from tests.observability.otlp_receiver import (
    SPAN_KIND_CLIENT,
    SPAN_KIND_CONSUMER,
    SPAN_KIND_SERVER,
    ReceivedSpan,
)

TASK_NAME = "apikit.idempotency_records_purge_all"
ENQUEUE_PATH = "/api/v1/test/enqueue-purge/"


def _user_id(slug: str, email: str, blocker: pytest.FixtureRequest) -> str:
    with blocker.unblock():  # type: ignore[attr-defined]
        tenant = Tenant.objects.get(slug=slug)
        with tenant_context(tenant):
            return str(User.objects.get(email=email).pk)


def _server_span(spans: Iterable[ReceivedSpan], trace_id: str) -> ReceivedSpan:
    servers = [s for s in spans if s.trace_id == trace_id and s.kind == SPAN_KIND_SERVER]
    assert len(servers) == 1, servers
    return servers[0]


def _ancestors(span: ReceivedSpan, by_id: dict[str, ReceivedSpan]) -> list[str]:
    chain, parent = [], span.parent_span_id
    while parent:
        chain.append(parent)
        parent = by_id[parent].parent_span_id if parent in by_id else ""
    return chain


def _trace_of_request(stack: TracedStack, request_id: str) -> str:
    """The trace id the web process logged for the request with this X-Request-ID."""
    lines = [
        line
        for line in stack.log_lines(stack.web_log)
        if line.get("logger") == "verdant.request" and line.get("request_id") == request_id
    ]
    assert len(lines) == 1, lines
    return str(lines[0]["trace_id"])


def test_request_and_its_task_are_one_trace_tagged_with_the_tenant(
    traced_stack: TracedStack, django_db_blocker: pytest.FixtureRequest
) -> None:
    host = tenant_host("alpha")
    token = traced_stack.login(host=host, email=ADMIN_EMAIL, password=PASSWORDS["alpha"])
    response = traced_stack.call(
        "POST", ENQUEUE_PATH, host=host, token=token, headers={"X-Request-ID": "enqueue-req-1"}
    )
    assert response.status_code == 202, response.text
    trace_id = _trace_of_request(traced_stack, "enqueue-req-1")
    assert len(trace_id) == 32

    spans = traced_stack.receiver.wait_for(
        lambda got: (
            any(s.trace_id == trace_id and s.name == f"run/{TASK_NAME}" for s in got)
            and any(s.trace_id == trace_id and s.kind == SPAN_KIND_SERVER for s in got)
        )
    )
    in_trace = [s for s in spans if s.trace_id == trace_id]
    by_id = {s.span_id: s for s in in_trace}

    request_span = _server_span(in_trace, trace_id)
    assert request_span.attributes["tenant.id"] == "t_alpha"
    assert request_span.attributes["enduser.id"] == _user_id(
        "alpha", ADMIN_EMAIL, django_db_blocker
    )
    assert request_span.attributes["enduser.role"] == "tenant_admin"
    assert request_span.attributes["verdant.request_id"] == "enqueue-req-1"
    assert request_span.attributes["http.route"] == "api/<str:version>/test/enqueue-purge/"
    assert request_span.resource["service.name"] == "verdant-web"
    assert request_span.resource["deployment.environment"] == "test"
    assert request_span.resource["service.version"]

    queries = [s for s in in_trace if s.attributes.get("db.system") == "postgresql"]
    assert queries, [s.name for s in in_trace]
    web_queries = [q for q in queries if q.resource["service.name"] == "verdant-web"]
    assert web_queries
    assert all(request_span.span_id in _ancestors(q, by_id) for q in web_queries)

    # The throttle's call and the broker publish: Redis client spans under the request span,
    # command names only (keys and values hold tenant and user ids, message bodies).
    web_redis = [
        s
        for s in in_trace
        if s.attributes.get("db.system") == "redis" and s.resource["service.name"] == "verdant-web"
    ]
    assert web_redis, [s.name for s in in_trace]
    assert all(request_span.span_id in _ancestors(call, by_id) for call in web_redis)
    for call in web_redis:
        for command in str(call.attributes["db.statement"]).splitlines():
            assert set(command.split()[1:]) <= {"?"}, command

    (task_span,) = [s for s in in_trace if s.name == f"run/{TASK_NAME}"]
    assert task_span.kind == SPAN_KIND_CONSUMER
    assert task_span.resource["service.name"] == "verdant-worker"
    assert task_span.attributes["tenant.id"] == "t_alpha"
    assert request_span.span_id in _ancestors(task_span, by_id)
    # The task's own queries are children of the task span, in the same trace.
    task_queries = [q for q in queries if q.resource["service.name"] == "verdant-worker"]
    assert task_queries
    assert all(task_span.span_id in _ancestors(q, by_id) for q in task_queries)
    # Queries and Redis commands outside any request or task (start-up, the worker polling the
    # broker, tenant-schemas-celery's lookup before the task span) start no trace of their own.
    orphans = [s.name for s in spans if s.kind == SPAN_KIND_CLIENT and not s.parent_span_id]
    assert orphans == []


def test_each_tenant_request_is_tagged_with_its_own_tenant_only(
    traced_stack: TracedStack, django_db_blocker: pytest.FixtureRequest
) -> None:
    traces: dict[str, str] = {}
    for slug in ("alpha", "beta"):
        host = tenant_host(slug)
        token = traced_stack.login(host=host, email=CLINICIAN_EMAIL, password=PASSWORDS[slug])
        response = traced_stack.call(
            "GET",
            "/api/v1/auth/me/",
            host=host,
            token=token,
            headers={"X-Request-ID": f"me-{slug}-1"},
        )
        assert response.status_code == 200, response.text
        traces[slug] = _trace_of_request(traced_stack, f"me-{slug}-1")
    assert traces["alpha"] != traces["beta"]

    spans = traced_stack.receiver.wait_for(
        lambda got: all(
            any(s.trace_id == trace_id and s.kind == SPAN_KIND_SERVER for s in got)
            for trace_id in traces.values()
        )
    )
    for slug, trace_id in traces.items():
        other = "t_beta" if slug == "alpha" else "t_alpha"
        request_span = _server_span(spans, trace_id)
        assert request_span.attributes["tenant.id"] == f"t_{slug}"
        # The same user id exists in both tenants (CLINICIAN_ID): the tag is this tenant's user.
        assert request_span.attributes["enduser.id"] == _user_id(
            slug, CLINICIAN_EMAIL, django_db_blocker
        )
        assert request_span.attributes["enduser.role"] == "clinician"
        tagged = {s.attributes.get("tenant.id") for s in spans if s.trace_id == trace_id}
        assert other not in tagged
        assert tagged <= {f"t_{slug}", None}


def test_server_error_envelope_carries_the_recorded_trace_id(traced_stack: TracedStack) -> None:
    host = tenant_host("alpha")
    token = traced_stack.login(host=host, email=ADMIN_EMAIL, password=PASSWORDS["alpha"])
    response = traced_stack.call("GET", "/api/v1/test/explode/", host=host, token=token)

    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "server_error"
    assert "boom" not in response.text  # never the exception text
    trace_id = error["trace_id"]
    spans = traced_stack.receiver.wait_for(
        lambda got: any(s.trace_id == trace_id and s.kind == SPAN_KIND_SERVER for s in got)
    )
    request_span = _server_span(spans, trace_id)
    assert request_span.status_code == 2  # STATUS_CODE_ERROR
    exceptions = [attrs for name, attrs in request_span.events if name == "exception"]
    assert [e["exception.type"] for e in exceptions] == ["RuntimeError"]
    assert exceptions[0]["exception.message"] == "boom for the trace"


def test_client_errors_carry_the_trace_id_too(traced_stack: TracedStack) -> None:
    response = traced_stack.call("GET", "/api/v1/auth/me/", host=tenant_host("alpha"))
    assert response.status_code == 401
    assert len(response.json()["error"]["trace_id"]) == 32


def test_request_log_lines_are_json_with_route_template_and_trace_context(
    traced_stack: TracedStack,
) -> None:
    host = tenant_host("beta")
    token = traced_stack.login(host=host, email=ADMIN_EMAIL, password=PASSWORDS["beta"])
    response = traced_stack.call(
        "GET",
        "/api/v1/users/?search=%2B15551234567",
        host=host,
        token=token,
        headers={"X-Request-ID": "users-list-1"},
    )
    assert response.status_code == 200, response.text

    (line,) = [
        line
        for line in traced_stack.log_lines(traced_stack.web_log)
        if line.get("request_id") == "users-list-1" and line["logger"] == "verdant.request"
    ]
    assert line["level"] == "INFO"
    assert line["timestamp"].endswith("Z")
    assert line["method"] == "GET"
    assert line["route"] == "/api/<str:version>/users/"
    assert line["status"] == 200
    assert line["duration_ms"] > 0
    assert line["tenant"] == "t_beta"
    assert len(line["trace_id"]) == 32
    assert len(line["span_id"]) == 16
    assert line["message"] == "GET /api/<str:version>/users/ 200"
    # The search term (a phone number) is in neither the log nor the span's URL attributes.
    assert "5551234567" not in traced_stack.web_log.read_text()
    spans = traced_stack.receiver.wait_for(
        lambda got: any(s.trace_id == line["trace_id"] and s.kind == SPAN_KIND_SERVER for s in got)
    )
    request_span = _server_span(spans, line["trace_id"])
    assert "5551234567" not in repr(request_span.attributes)


def test_no_search_term_reaches_any_span_of_the_trace(traced_stack: TracedStack) -> None:
    """Names and phone numbers travel in query strings; the instrumentation sets the URL
    attributes with them after the span starts, and RequestSpanMiddleware cuts them on the way
    out. Statements carry placeholders, never the parameters."""
    host = tenant_host("alpha")
    token = traced_stack.login(host=host, email=ADMIN_EMAIL, password=PASSWORDS["alpha"])
    response = traced_stack.call(
        "GET",
        "/api/v1/users/?search=Jane+Doe&phone=%2B15557654321",
        host=host,
        token=token,
        headers={"X-Request-ID": "phi-search-1"},
    )
    assert response.status_code == 200, response.text
    trace_id = _trace_of_request(traced_stack, "phi-search-1")
    spans = traced_stack.receiver.wait_for(
        lambda got: any(s.trace_id == trace_id and s.kind == SPAN_KIND_SERVER for s in got)
    )
    in_trace = [s for s in spans if s.trace_id == trace_id]
    request_span = _server_span(in_trace, trace_id)
    assert request_span.attributes["http.target"] == "/api/v1/users/"
    assert request_span.attributes["tenant.id"] == "t_alpha"
    assert any(s.attributes.get("db.system") == "postgresql" for s in in_trace)
    for span in in_trace:
        text = repr((span.name, span.attributes, span.events))
        for secret in ("Jane", "Doe", "5557654321", "search="):
            assert secret not in text, (span.name, secret)


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_by_pod_ip_answer_with_tracing_on(traced_stack: TracedStack, path: str) -> None:
    """The kubelet probes by pod IP, a host outside ALLOWED_HOSTS: the instrumentation's
    middleware (which asks for the absolute URL) sits after the health checks."""
    response = traced_stack.call("GET", path, host="10.1.2.3:8000")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"


def test_worker_log_lines_carry_the_task_tenant(traced_stack: TracedStack) -> None:
    host = tenant_host("beta")
    token = traced_stack.login(host=host, email=ADMIN_EMAIL, password=PASSWORDS["beta"])
    assert traced_stack.call("POST", ENQUEUE_PATH, host=host, token=token).status_code == 202
    traced_stack.receiver.wait_for(
        lambda got: any(
            s.name == f"run/{TASK_NAME}" and s.attributes.get("tenant.id") == "t_beta" for s in got
        )
    )
    task_lines = [
        line
        for line in traced_stack.log_lines(traced_stack.worker_log)
        if line.get("tenant") == "t_beta" and line.get("task_id")
    ]
    assert task_lines
    assert all(len(line["trace_id"]) == 32 for line in task_lines)
