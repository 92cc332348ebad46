"""Real-browser fixtures: Debian's chromium driven by Playwright against a real gunicorn.

Tenants ``br-a`` / ``br-b`` are committed (tests/security/world.py), with a platform operator
in the public schema. Chromium resolves every ``*.verdant.test`` host to the loopback server
(``--host-resolver-rules``), so tenant routing by Host works as in production.

When a test fails, a screenshot of its page is saved under a temporary directory and its path
printed. Without a chromium executable every test fails (never skips) saying
``apt-get install chromium``: `make test` / `make browser` install it first when run as root with
apt-get (.ci/ensure-chromium). ``CHROMIUM`` names the executable instead of PATH's
``chromium`` / ``chromium-browser``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections
from django_tenants.utils import schema_context

from accounts.models import User
from tests.security.live import LiveServer, live_gunicorn
from tests.security.world import World, world_create, world_drop

PREFIX = "br"
OPERATOR_EMAIL = "ops-browser@verdant.example"
OPERATOR_PASSWORD = "ops-Browser-Pass-3"
SCREENSHOT_DIR = Path(tempfile.gettempdir()) / "verdant-browser-screenshots"


CHROMIUM_MISSING = (
    "chromium is not installed: apt-get install chromium (as root, `make test` and "
    "`make browser` install it: .ci/ensure-chromium)"
)


def chromium_path() -> str | None:
    """``CHROMIUM`` if set (an executable file, else None), else chromium on PATH."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return configured if Path(configured).is_file() and os.access(configured, os.X_OK) else None
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_required() -> str:
    """The chromium executable, or a failure (never a skip) saying how to install it."""
    path = chromium_path()
    if path is None:
        pytest.fail(
            f"{CHROMIUM_MISSING}; CHROMIUM={os.environ.get('CHROMIUM', '')!r}", pytrace=False
        )
    return path


@dataclass(frozen=True)
class BrowserWorld:
    server: LiveServer
    world: World

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.server.port}{path}"

    @property
    def public_host(self) -> str:
        from django.conf import settings

        return str(settings.BASE_DOMAIN)


@pytest.fixture(scope="package")
def browser_world(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[BrowserWorld]:
    chromium_required()
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        assert not connection.in_atomic_block
        world = world_create(PREFIX)
        _operator_delete()
        with schema_context("public"):
            User.objects.create_superuser(OPERATOR_EMAIL, OPERATOR_PASSWORD)
        try:
            with live_gunicorn(workers=2, name="browser") as server:
                yield BrowserWorld(server=server, world=world)
        finally:
            connection.close()
            _operator_delete()
            world_drop(PREFIX)


def _operator_delete() -> None:
    """Raw delete: the ORM's cascade would look for guardian tables, which public lacks."""
    with schema_context("public"), connection.cursor() as cursor:
        cursor.execute(
            f"DELETE FROM {User._meta.db_table} WHERE email = %s",
            [OPERATOR_EMAIL],
        )


@pytest.fixture(scope="package")
def browser(browser_world: BrowserWorld) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread; Django's guard against
    # ORM calls from async code would then refuse the test's own (synchronous) database access.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with contextlib.ExitStack() as restore:
        restore.callback(_restore_env, "DJANGO_ALLOW_ASYNC_UNSAFE", previous)
        playwright = restore.enter_context(sync_playwright())
        launched = playwright.chromium.launch(
            executable_path=chromium_required(),
            headless=True,
            args=[
                "--host-resolver-rules=MAP *.verdant.test 127.0.0.1, MAP verdant.test 127.0.0.1",
                "--no-sandbox",  # CI runs as root
                "--disable-dev-shm-usage",
            ],
        )
        restore.callback(launched.close)
        # Database connections opened while Playwright's loop ran belong to that context.
        restore.callback(connections.close_all)
        yield launched


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context (no cookies) and page; a screenshot if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    new_page = context.new_page()
    try:
        yield new_page
    finally:
        report = getattr(request.node, "report_call", None)
        if report is not None and report.failed:
            SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
            target = SCREENSHOT_DIR / f"{request.node.name}.png"
            try:
                new_page.screenshot(path=str(target), full_page=True)
                print(f"\n[browser] screenshot of the failed page: {target} ({new_page.url})")  # noqa: T201
            except Exception as exc:
                print(f"\n[browser] no screenshot: {exc}")  # noqa: T201
        context.close()
