"""``manage.py check --database default`` (and ``migrate``): stored tenant SMS secrets need
NOTIFY_SECRET_KEYS. Settings cannot ask the database, so production starts without keys while
no tenant stored a token, and this check (plus the refusal at the point of use) says so once
one has."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register
from django.db import DatabaseError

from notify.public.models import SenderRoute
from notify.secrets import KEYS_MISSING_DETAIL, secret_keys_configured


@register(Tags.database)
def secret_keys_check(
    app_configs: Sequence[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    if secret_keys_configured():
        return []
    try:
        stored = SenderRoute.objects.filter(has_secret=True).count()
    except DatabaseError:
        return []  # not migrated yet: nothing can be stored either
    if not stored:
        return []
    return [
        Error(
            f"{stored} organisation(s) stored an SMS auth token. {KEYS_MISSING_DETAIL}",
            id="notify.E001",
        )
    ]
