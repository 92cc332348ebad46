"""``?paginate=page`` (issue 19, item 7): numbered pages with metadata on every list endpoint,
counted over the user's scoped, filtered rows up to API_PAGE_COUNT_LIMIT (``LIMIT n+1``)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context
from rest_framework.test import APIClient

from accounts.roles import Role
from apikit.policy import AccessLevel, container_access_grant
from audit.models import AuditEvent
from clinical.api.pagination import MAX_SEARCH_PAGES
from clinical.models import Facility, Patient
from tests.clinical import conftest as clinical
from tests.clinical.conftest import F1_ID, P1_ID, P2_ID, STAFF_PASSWORD, Clinic, make_patient
from tests.conftest import CLINICIAN_EMAIL, TenantWorld, login
from tests.query_budget import assert_constant_queries

PATIENTS = "/api/v1/clinical/patients/"
META_KEYS = {"count", "count_exact", "total_pages", "current_page", "page_size"}
# Every list endpoint (the patient's documents list is built from P1_ID below).
LIST_URLS = (
    "/api/v1/users/",
    "/api/v1/users/invitations/",
    "/api/v1/audit/events/",
    "/api/v1/clinical/facilities/",
    PATIENTS,
    f"/api/v1/clinical/patients/{P1_ID}/documents/",
    "/api/v1/clinical/appointments/",
    "/api/v1/clinical/prescriptions/",
    "/api/v1/clinical/reminders/",
    "/api/v1/farms/",
    "/api/v1/farms/fields/",
    "/api/v1/farms/crops/",
    "/api/v1/farms/plantings/",
    "/api/v1/farms/observations/",
    "/api/v1/farms/harvests/",
    "/api/v1/sync/devices/",
)


@pytest.fixture
def clinic(alpha: TenantWorld) -> Clinic:
    return clinical._clinic(alpha)


@pytest.fixture
def clinic_beta(beta: TenantWorld) -> Clinic:
    return clinical._clinic(beta)


def _add_patients(
    clinic: Clinic, n: int, *, facility: Facility | None = None, **extra: Any
) -> None:
    with tenant_context(clinic.world.tenant):
        start = Patient.objects.count()
        for i in range(start, start + n):
            make_patient(facility=facility or clinic.f1, mrn=f"PG-{i:05d}", **extra)


def _pages(client: APIClient, url: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page, following ``next`` as given."""
    bodies = []
    response = client.get(url, params)
    while True:
        assert response.status_code == 200, response.content
        bodies.append(response.json())
        if not bodies[-1]["next"]:
            return bodies
        response = client.get(bodies[-1]["next"])


def _error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content
    error: dict[str, Any] = response.json()["error"]
    assert error["status"] == status
    return error


# --- the shape, on every list endpoint ----------------------------------------------------------


@pytest.mark.parametrize("url", LIST_URLS)
def test_every_list_endpoint_answers_numbered_pages(clinic: Clinic, url: str) -> None:
    client = login(clinic.world)
    response = client.get(url, {"paginate": "page"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"meta", "results", "next", "previous"}
    assert set(body["meta"]) == META_KEYS
    assert body["meta"]["current_page"] == 1
    assert body["meta"]["count_exact"] is True
    assert body["meta"]["count"] == len(body["results"])
    # An empty list still has its (empty) page 1.
    assert body["meta"]["total_pages"] == max(1, -(-body["meta"]["count"] // 50))
    assert body["previous"] is None
    # Cursors stay the default, and ``paginate=cursor`` says so explicitly.
    for params in ({}, {"paginate": "cursor"}):
        default = client.get(url, params)
        assert default.status_code == 200, default.content
        assert set(default.json()) == {"results", "next", "previous"}


def test_counts_never_include_the_other_tenant(clinic: Clinic, clinic_beta: Clinic) -> None:
    # Same facility and patient ids in both tenants; beta holds 5 more patients.
    _add_patients(clinic_beta, 5)
    alpha_body = login(clinic.world).get(PATIENTS, {"paginate": "page"}).json()
    beta_body = login(clinic_beta.world).get(PATIENTS, {"paginate": "page"}).json()
    assert alpha_body["meta"] == {
        "count": 2,
        "count_exact": True,
        "total_pages": 1,
        "current_page": 1,
        "page_size": 50,
    }
    assert {row["id"] for row in alpha_body["results"]} == {str(P1_ID), str(P2_ID)}
    assert all("PG-" not in row["mrn"] for row in alpha_body["results"])
    assert beta_body["meta"]["count"] == 7
    # A filter on a colliding facility id counts the caller's own rows only.
    filtered = login(clinic.world).get(PATIENTS, {"paginate": "page", "facility": str(F1_ID)})
    assert filtered.json()["meta"]["count"] == 1
    # Alpha's token on beta's host is refused before any count is taken.
    token = (
        clinic.world.client()
        .post(
            "/api/v1/auth/token/",
            {"email": "admin@example.com", "password": clinic.world.password},
            format="json",
        )
        .json()["access"]
    )
    foreign = clinic_beta.world.client().get(
        PATIENTS, {"paginate": "page"}, HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    _error(foreign, 401)


def test_a_one_facility_clinician_counts_only_their_facility(clinic: Clinic) -> None:
    _add_patients(clinic, 3, facility=clinic.f2)  # F2: not the clinician's
    _add_patients(clinic, 2)  # F1: the clinician's
    admin = login(clinic.world).get(PATIENTS, {"paginate": "page"}).json()
    mine = login(clinic.world, email=CLINICIAN_EMAIL).get(PATIENTS, {"paginate": "page"}).json()
    assert admin["meta"]["count"] == 7
    assert mine["meta"]["count"] == 3
    with tenant_context(clinic.world.tenant):
        f1_ids = {
            str(pk)
            for pk in Patient.objects.filter(facility=clinic.f1).values_list("pk", flat=True)
        }
    assert {row["id"] for row in mine["results"]} == f1_ids
    appointments = login(clinic.world, email=CLINICIAN_EMAIL).get(
        "/api/v1/clinical/appointments/", {"paginate": "page"}
    )
    assert appointments.json()["meta"]["count"] == 1


def test_role_projection_applies_to_numbered_pages(clinic: Clinic) -> None:
    with tenant_context(clinic.world.tenant):
        viewer_user = clinical.make_user(email="viewer@example.com", role=Role.VIEWER)
        for facility in (clinic.f1, clinic.f2):
            container_access_grant(user=viewer_user, container=facility, level=AccessLevel.VIEW)
    viewer = login(clinic.world, email="viewer@example.com", password=STAFF_PASSWORD)
    body = viewer.get(PATIENTS, {"paginate": "page"}).json()
    assert body["meta"]["count"] == 2
    assert all("phone" not in row for row in body["results"])
    refused = viewer.get(PATIENTS, {"paginate": "page", "ordering": "phone"})
    assert "ordering" in _error(refused, 400)["fields"]


# --- the limit ------------------------------------------------------------------------------------


def test_above_the_limit_the_count_is_the_limit_and_inexact(clinic: Clinic, settings: Any) -> None:
    settings.API_PAGE_COUNT_LIMIT = 3
    _add_patients(clinic, 3)  # 5 in all
    client = login(clinic.world)
    with CaptureQueriesContext(connection) as captured:
        first = client.get(PATIENTS, {"paginate": "page", "page_size": "2"})
    assert first.status_code == 200, first.content
    assert first.json()["meta"] == {
        "count": 3,
        "count_exact": False,
        "total_pages": None,
        "current_page": 1,
        "page_size": 2,
    }
    counts = [q["sql"] for q in captured.captured_queries if "COUNT(" in q["sql"].upper()]
    # One bounded count over the scoped query (LIMIT limit + 1), never a planner estimate.
    assert len(counts) == 1, counts
    assert re.search(r"LIMIT 4\)?\s*(subquery)?\s*$", counts[0], re.IGNORECASE), counts[0]
    assert not any(
        "pg_class" in q["sql"] or "EXPLAIN" in q["sql"] for q in captured.captured_queries
    )
    # Page 2 starts within the limit (row 3) and is served; it offers no next page.
    second = client.get(first.json()["next"])
    assert second.status_code == 200
    assert len(second.json()["results"]) == 2
    assert second.json()["next"] is None
    # Page 3 starts past the limit: refused, pointing to cursors.
    error = _error(client.get(PATIENTS, {"paginate": "page", "page_size": "2", "page": "3"}), 400)
    assert error["code"] == "page_beyond_count_limit"
    assert "cursor" in error["detail"]
    assert error["count_limit"] == 3
    assert error["last_page"] == 2


def test_at_the_limit_the_count_is_exact(clinic: Clinic, settings: Any) -> None:
    settings.API_PAGE_COUNT_LIMIT = 4
    _add_patients(clinic, 2)
    body = login(clinic.world).get(PATIENTS, {"paginate": "page", "page_size": "3"}).json()
    assert body["meta"]["count"] == 4
    assert body["meta"]["count_exact"] is True
    assert body["meta"]["total_pages"] == 2


def test_the_limit_is_on_the_scoped_rows(clinic: Clinic, settings: Any) -> None:
    """Many rows in the tenant, few in the clinician's scope: the clinician's count is exact."""
    settings.API_PAGE_COUNT_LIMIT = 3
    _add_patients(clinic, 5, facility=clinic.f2)
    _add_patients(clinic, 1)
    admin = login(clinic.world).get(PATIENTS, {"paginate": "page"}).json()["meta"]
    mine = login(clinic.world, email=CLINICIAN_EMAIL).get(PATIENTS, {"paginate": "page"}).json()
    assert (admin["count"], admin["count_exact"]) == (3, False)
    assert (mine["meta"]["count"], mine["meta"]["count_exact"]) == (2, True)


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["pages", "", "PAGE", "offset"])
def test_unknown_paginate_values_are_400(clinic: Clinic, value: str) -> None:
    error = _error(login(clinic.world).get(PATIENTS, {"paginate": value}), 400)
    assert error["code"] == "validation_error"
    assert "paginate" in error["fields"]


@pytest.mark.parametrize("page", ["0", "-1", "abc", "1.5", "", "٣"])
def test_invalid_page_numbers_are_400(clinic: Clinic, page: str) -> None:
    error = _error(login(clinic.world).get(PATIENTS, {"paginate": "page", "page": page}), 400)
    assert error["fields"] == {"page": ["page must be a positive integer."]}


def test_a_page_past_the_last_is_404(clinic: Clinic) -> None:
    error = _error(login(clinic.world).get(PATIENTS, {"paginate": "page", "page": "2"}), 404)
    assert error["code"] == "not_found"
    assert "last page is 1" in error["detail"]


def test_a_huge_page_number_is_refused_without_a_query(clinic: Clinic) -> None:
    client = login(clinic.world)
    client.get(PATIENTS, {"paginate": "page"})  # warm
    with CaptureQueriesContext(connection) as captured:
        response = client.get(PATIENTS, {"paginate": "page", "page": str(10**30)})
    assert _error(response, 400)["code"] == "page_beyond_count_limit"
    assert not any("clinical_patient" in q["sql"] for q in captured.captured_queries)


def test_a_cursor_with_numbered_pages_is_400(clinic: Clinic) -> None:
    client = login(clinic.world)
    cursor_link = client.get(PATIENTS, {"page_size": "1"}).json()["next"]
    error = _error(client.get(f"{cursor_link}&paginate=page"), 400)
    assert "cursor" in error["fields"]


def test_refusals_need_a_signed_in_member(clinic: Clinic) -> None:
    assert _error(clinic.world.client().get(PATIENTS, {"paginate": "page"}), 401)


# --- ordering, links, audit ------------------------------------------------------------------------


def test_pages_follow_the_cursor_modes_order_with_an_id_tiebreak(clinic: Clinic) -> None:
    # Equal family names: the order among them is decided by the id.
    _add_patients(clinic, 7, family="Tie")
    client = login(clinic.world)
    for ordering in (None, "family_name", "-family_name", "created_at"):
        params = {"page_size": "2", **({"ordering": ordering} if ordering else {})}
        numbered = _pages(client, PATIENTS, {**params, "paginate": "page"})
        cursored = _pages(client, PATIENTS, params)
        numbered_ids = [row["id"] for body in numbered for row in body["results"]]
        cursor_ids = [row["id"] for body in cursored for row in body["results"]]
        assert len(numbered_ids) == len(set(numbered_ids)) == 9
        assert numbered_ids == cursor_ids or ordering in {"family_name", "-family_name"}
        if ordering in {"family_name", "-family_name"}:
            # Same key order as cursors; ties broken by id in the key's direction.
            with tenant_context(clinic.world.tenant):
                expected = [
                    str(pk)
                    for pk in Patient.objects.order_by(
                        ordering, "-id" if ordering.startswith("-") else "id"
                    ).values_list("pk", flat=True)
                ]
            assert numbered_ids == expected
        assert [body["meta"]["current_page"] for body in numbered] == [1, 2, 3, 4, 5]
        assert {body["meta"]["total_pages"] for body in numbered} == {5}


def test_links_are_absolute_on_the_tenant_host_and_keep_the_query(clinic: Clinic) -> None:
    _add_patients(clinic, 4)  # 6 in all
    client = login(clinic.world)
    params = {"paginate": "page", "page_size": "2", "facility": str(F1_ID)}  # F1: 5 patients
    first = client.get(PATIENTS, params).json()
    host = f"http://{clinic.world.host}{PATIENTS}?"
    assert first["next"].startswith(host)
    assert "page=2" in first["next"]
    assert f"facility={F1_ID}" in first["next"]
    assert "paginate=page" in first["next"]
    assert "page_size=2" in first["next"]
    second = client.get(first["next"]).json()
    assert second["previous"].startswith(host)
    assert "page=" not in second["previous"].replace("page_size", "")
    third = client.get(second["next"]).json()
    assert "page=2" in third["previous"]
    assert third["next"] is None
    assert third["meta"] == {
        "count": 5,
        "count_exact": True,
        "total_pages": 3,
        "current_page": 3,
        "page_size": 2,
    }


def test_page_size_is_clamped_like_cursors(clinic: Clinic) -> None:
    body = login(clinic.world).get(PATIENTS, {"paginate": "page", "page_size": "10000"}).json()
    assert body["meta"]["page_size"] == 200


def test_a_numbered_page_of_patients_is_audited_with_its_ids(clinic: Clinic) -> None:
    body = (
        login(clinic.world)
        .get(PATIENTS, {"paginate": "page", "page_size": "1", "page": "2"})
        .json()
    )
    with tenant_context(clinic.world.tenant):
        event = AuditEvent.objects.filter(
            action=AuditEvent.Action.READ, object_type="clinical.patient"
        ).latest("occurred_at")
    assert [str(pk) for pk in event.object_ids] == [body["results"][0]["id"]]


def test_ranked_search_gets_metadata_up_to_the_search_pages(clinic: Clinic, settings: Any) -> None:
    _add_patients(clinic, 3, family="Zebra")
    client = login(clinic.world)
    body = client.get(PATIENTS, {"search": "zebra", "paginate": "page", "page_size": "2"}).json()
    assert body["meta"] == {
        "count": 3,
        "count_exact": True,
        "total_pages": 2,
        "current_page": 1,
        "page_size": 2,
    }
    assert {row["family_name"] for row in body["results"]} == {"Zebra"}
    # The rows a search reaches are MAX_SEARCH_PAGES pages; past them: refused, narrow it.
    error = _error(
        client.get(
            PATIENTS,
            {
                "search": "zebra",
                "paginate": "page",
                "page_size": "1",
                "page": str(MAX_SEARCH_PAGES + 1),
            },
        ),
        400,
    )
    assert error["code"] == "page_beyond_count_limit"
    assert "narrow the search" in error["detail"]
    # Without paginate=page, search keeps its plain positional pages.
    plain = client.get(PATIENTS, {"search": "zebra", "page_size": "2"}).json()
    assert set(plain) == {"results", "next", "previous"}


# --- query count -------------------------------------------------------------------------------


def test_query_count_is_constant_and_one_more_than_cursors(clinic: Clinic) -> None:
    client = login(clinic.world)

    with tenant_context(clinic.world.tenant):
        facility = Facility.objects.create(name="East", code="E1", timezone="Europe/Berlin")
    params = {"facility": str(facility.pk), "page_size": "100"}

    def add_rows(n: int) -> None:
        _add_patients(clinic, n, facility=facility)

    numbered = assert_constant_queries(
        fetch=lambda: client.get(PATIENTS, {**params, "paginate": "page"}),
        add_rows=add_rows,
        expected_rows=lambda r: len(r.json()["results"]),
    )
    with CaptureQueriesContext(connection) as cursor_queries:
        client.get(PATIENTS, params)
    # The bounded count is the only extra query: 5 for a tenant_admin's page of patients, the
    # cursor page's 4 (search_path, the user, the page, the read audit) plus the count.
    assert numbered == len(cursor_queries.captured_queries) + 1
    assert numbered == 5


# --- endpoints that are not lists -------------------------------------------------------------------


def test_non_list_endpoints_ignore_the_parameters(clinic: Clinic) -> None:
    client = login(clinic.world)
    detail = client.get(f"{PATIENTS}{P1_ID}/", {"paginate": "bogus"})
    assert detail.status_code == 200, detail.content
    assert "meta" not in detail.json()
    access = client.get(f"/api/v1/clinical/facilities/{F1_ID}/access/", {"paginate": "page"})
    assert access.status_code == 200, access.content
    assert isinstance(access.json(), list)
    me = client.get("/api/v1/auth/me/", {"paginate": "bogus"})
    assert me.status_code == 200, me.content
    pull = client.get("/api/v1/sync/pull/", {"paginate": "page"})
    assert pull.status_code == 200, pull.content
    assert "meta" not in pull.json()
    assert "changes" in pull.json()
