"""Drive the Django admin over HTTP like a browser: a session, the CSRF token from the page, form
posts. In-process through Django's test Client (CSRF checks on), on a tenant's or the operators'
host, from a chosen client IP."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Protocol, cast

from django.conf import settings
from django.http import HttpResponse
from django.test import Client

from accounts.admin_site import device_cookie_name

LOGIN_PATH = "/admin/login/?next=/admin/"
PASSWORD_CHANGE_PATH = "/admin/password_change/"
INVALID_LOGIN_TEXT = (
    "Please enter the correct email and password for a staff account. "
    "Note that both fields may be case-sensitive."
)
THROTTLED_TEXT = "Too many attempts. Try again in"
_CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_ERRORS = re.compile(
    r'<p class="errornote">(.*?)</p>|<ul class="errorlist[^"]*"[^>]*>(.*?)</ul>', re.S
)


class Page(Protocol):
    """What these helpers read of a test client's response."""

    status_code: int
    content: bytes

    def __getitem__(self, header: str) -> str: ...


def form_errors(response: Page) -> list[str]:
    """The error notes and lists of a rendered admin page, tags and spacing stripped."""
    found = ("".join(groups) for groups in _ERRORS.findall(page(response)))
    return [" ".join(re.sub(r"<[^>]+>", " ", text).split()) for text in found]


def page(response: Page) -> str:
    return response.content.decode()


@dataclass
class AdminBrowser:
    """One browser on one admin host."""

    host: str
    ip: str = "203.0.113.10"
    client: Client = field(init=False)
    # Seconds each POST took, for timing comparisons.
    durations: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.client = Client(HTTP_HOST=self.host, REMOTE_ADDR=self.ip, enforce_csrf_checks=True)

    def _token(self, path: str) -> str:
        response = self.client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        found = _CSRF_INPUT.search(page(response))
        assert found, f"no CSRF token on {path}"
        return found.group(1)

    def login(self, email: str, password: str) -> HttpResponse:
        token = self._token(LOGIN_PATH)
        started = time.perf_counter()
        response = self.client.post(
            LOGIN_PATH,
            {"username": email, "password": password, "csrfmiddlewaretoken": token},
        )
        self.durations.append(time.perf_counter() - started)
        return cast(HttpResponse, response)

    def change_password(self, old: str, new: str) -> HttpResponse:
        token = self._token(PASSWORD_CHANGE_PATH)
        response = self.client.post(
            PASSWORD_CHANGE_PATH,
            {
                "old_password": old,
                "new_password1": new,
                "new_password2": new,
                "csrfmiddlewaretoken": token,
            },
        )
        return cast(HttpResponse, response)

    def signed_in(self) -> bool:
        response = self.client.get("/admin/")
        return bool(response.status_code == 200)

    @property
    def device_cookie(self) -> str | None:
        morsel = self.client.cookies.get(device_cookie_name())
        return morsel.value if morsel is not None and morsel.value else None

    def with_device_cookie_only(self, *, ip: str | None = None) -> AdminBrowser:
        """The same browser after its session ended: only the device cookie is left."""
        other = AdminBrowser(host=self.host, ip=ip or self.ip)
        cookie = self.device_cookie
        assert cookie, "this browser has no device cookie"
        other.client.cookies[device_cookie_name()] = cookie
        return other


def retry_after(response: Page) -> int:
    assert response.status_code == 429, (response.status_code, form_errors(response))
    assert THROTTLED_TEXT in page(response)
    return int(response["Retry-After"])


def throttle_prefix() -> str:
    return str(settings.CACHES["default"]["KEY_PREFIX"])
