"""Django admin and the API docs in a real browser (headless chromium via Playwright).

1. A tenant admin logs in on the tenant's host, creates a facility and a patient, grants a
   clinician access with guardian's object-permission screens, and sees only its own tenant's
   rows (tenant B holds rows with the same ids, marked BRAVOMARK).
2. A platform operator on the public host suspends tenant B; B's API then answers 403.
3. Swagger UI at /api/v1/docs/ loads and lists the endpoints.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
import requests

from tests.browser.conftest import OPERATOR_EMAIL, OPERATOR_PASSWORD, BrowserWorld
from tests.security.world import email_for

# django_db: pytest-django creates the test database the package fixtures commit to.
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db]


def admin_login(page: Any, bw: BrowserWorld, host: str, email: str, password: str) -> None:
    page.goto(bw.url(host, "/admin/login/?next=/admin/"))
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")
    assert "/admin/login/" not in page.url, page.content()[:2000]


def api_token(bw: BrowserWorld, host: str, email: str, password: str) -> str:
    response = requests.post(
        f"{bw.server.url}/api/v1/auth/token/",
        json={"email": email, "password": password},
        headers={"Host": host},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access"])


def api_get(bw: BrowserWorld, host: str, path: str, token: str = "") -> requests.Response:
    headers = {"Host": host, **({"Authorization": f"Bearer {token}"} if token else {})}
    return requests.get(f"{bw.server.url}{path}", headers=headers, timeout=30)


def test_tenant_admin_creates_facility_and_patient_grants_access_sees_only_own_data(
    page: Any, browser_world: BrowserWorld
) -> None:
    bw, a, b = browser_world, browser_world.world.a, browser_world.world.b
    admin_login(page, bw, a.host, email_for("tenant_admin"), a.password)

    # Only A's rows, although B has rows with the very same ids.
    page.goto(bw.url(a.host, "/admin/clinical/patient/"))
    listing = page.inner_text("#result_list")
    assert a.marker in listing
    assert b.marker not in page.content()
    page.goto(bw.url(a.host, "/admin/clinical/facility/"))
    assert f"{a.marker} North" in page.inner_text("#result_list")
    assert b.marker not in page.content()

    # A facility.
    page.goto(bw.url(a.host, "/admin/clinical/facility/add/"))
    page.fill("input[name=name]", "Browser Clinic")
    page.fill("input[name=code]", "BRW1")
    page.fill("input[name=timezone]", "Europe/Lisbon")
    page.fill("input[name=phone]", "+351 912 345 678")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert "Browser Clinic" in page.inner_text("#result_list")

    # A patient in it.
    page.goto(bw.url(a.host, "/admin/clinical/patient/add/"))
    page.fill("input[name=mrn]", "BRW-0001")
    page.fill("input[name=given_name]", "Rosalind")
    page.fill("input[name=family_name]", "Franklin")
    page.fill("input[name=birth_date]", "1920-07-25")
    page.select_option("select[name=sex]", "female")
    page.select_option("select[name=facility]", label="Browser Clinic (BRW1)")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    assert "BRW-0001" in page.inner_text("#result_list")

    # The clinician does not see the new facility yet...
    clinician_token = api_token(bw, a.host, email_for("clinician"), a.password)
    before = api_get(bw, a.host, "/api/v1/clinical/facilities/", clinician_token)
    assert before.status_code == 200
    assert "Browser Clinic" not in before.text

    # ...until the admin grants access with guardian's object-permission screens.
    page.goto(bw.url(a.host, "/admin/clinical/facility/"))
    page.click("text=Browser Clinic")
    page.click("a:has-text('Object permissions')")
    page.fill("input[name=user]", email_for("clinician"))
    page.click("input[name=submit_manage_user]")
    # Django's two-box selector: pick in "Available", move with the arrow, save.
    page.wait_for_selector("#id_permissions_from")
    page.select_option(
        "#id_permissions_from",
        label=["Can view facility", "Can manage the facility and everything under it"],
    )
    page.click("#id_permissions_add")
    page.click("input[type=submit]")
    page.wait_for_selector(".messagelist .success")

    after = api_get(bw, a.host, "/api/v1/clinical/facilities/", clinician_token)
    assert after.status_code == 200
    assert "Browser Clinic" in after.text
    patients = api_get(bw, a.host, "/api/v1/clinical/patients/?search=BRW-0001", clinician_token)
    assert "Rosalind" in patients.text, patients.text
    assert b.marker not in after.text + patients.text


def test_operator_suspends_a_tenant_and_its_api_answers_403(
    page: Any, browser_world: BrowserWorld
) -> None:
    bw, b = browser_world, browser_world.world.b
    assert api_get(bw, b.host, "/api/v1/auth/me/").status_code == 401  # served, not suspended
    try:
        admin_login(page, bw, bw.public_host, OPERATOR_EMAIL, OPERATOR_PASSWORD)
        page.goto(bw.url(bw.public_host, "/admin/tenants/tenant/"))
        row = page.locator("#result_list tr", has_text=b.slug)
        row.locator("input[name=_selected_action]").check()
        page.select_option("select[name=action]", "suspend")
        page.click("button[name=index]")
        page.wait_for_selector(".messagelist")
        assert "Suspended 1 tenant" in page.inner_text(".messagelist")
        page.goto(bw.url(bw.public_host, f"/admin/tenants/tenant/?q={b.slug}"))
        assert "Suspended" in page.inner_text("#result_list")

        # Every web process notices within the routing recheck interval (1 s).
        response = _api_until(bw, b.host, status=403)
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "tenant_suspended"
        # The other tenant is untouched.
        assert api_get(bw, bw.world.a.host, "/api/v1/auth/me/").status_code == 401
    finally:
        # The world is shared by the package's tests (the real-time board logs in on B): the
        # operator reactivates B, and the servers serve it again.
        page.goto(bw.url(bw.public_host, f"/admin/tenants/tenant/?q={b.slug}"))
        page.locator("#result_list tr", has_text=b.slug).locator(
            "input[name=_selected_action]"
        ).check()
        page.select_option("select[name=action]", "reactivate")
        page.click("button[name=index]")
        page.wait_for_selector(".messagelist")
        assert _api_until(bw, b.host, status=401).status_code == 401


def _api_until(bw: BrowserWorld, host: str, *, status: int) -> requests.Response:
    deadline = time.monotonic() + 10
    while True:
        response = api_get(bw, host, "/api/v1/auth/me/")
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.25)


def test_swagger_ui_loads_and_lists_the_endpoints(page: Any, browser_world: BrowserWorld) -> None:
    bw, a = browser_world, browser_world.world.a
    page.goto(bw.url(a.host, "/api/v1/docs/"))
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert "Verdant" in page.inner_text(".swagger-ui .info")
    paths = set(page.locator(".opblock-summary-path").all_inner_texts())
    paths = {re.sub(r"\s+", "", text) for text in paths}
    expected = {
        "/api/v1/auth/token/",
        "/api/v1/clinical/patients/",
        "/api/v1/clinical/patients/{id}/",
        "/api/v1/farms/",
    }
    assert expected <= paths, sorted(paths)
    document = api_get(bw, a.host, "/api/v1/schema/?format=json")
    assert document.status_code == 200
    operations = sum(
        1
        for item in document.json()["paths"].values()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    )
    assert page.locator(".opblock").count() == operations
