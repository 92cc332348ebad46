"""The password reset request's own limit: requests per (tenant, client IP, email), like the
login's attempts bucket (apikit.login_guard), so nobody can flood one mailbox with reset mail or
probe addresses fast. Keys live beside the other throttle buckets
(``<prefix>:throttle:<schema>:password-reset:<ip>:<email digest>``); Redis down lets requests
through, like every throttle."""

from __future__ import annotations

from django.conf import settings
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from apikit.request_context import client_ip
from apikit.throttling import (
    Bucket,
    buckets_check_or_allow,
    email_digest,
    key_prefix,
    login_email,
)

RESET_PERIOD_SECONDS = 15 * 60


class PasswordResetThrottle(BaseThrottle):
    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            return True
        try:
            data: object = request.data
        except (exceptions.ParseError, exceptions.UnsupportedMediaType):
            data = None  # charged as email "": the view answers the parse error
        digest = email_digest(email=login_email(data=data))
        bucket = Bucket(
            key=f"{key_prefix()}:throttle:{tenant.schema_name}:password-reset:"
            f"{client_ip(request)}:{digest}",
            limit=int(settings.PASSWORD_RESET_REQUESTS_PER_15_MINUTES),
            period_seconds=RESET_PERIOD_SECONDS,
        )
        verdict = buckets_check_or_allow(buckets=[bucket])
        if not verdict.allowed:
            self.wait_seconds = verdict.wait_seconds
            return False
        return True

    def wait(self) -> float | None:
        return self.wait_seconds
