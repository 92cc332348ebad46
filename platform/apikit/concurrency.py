"""Optimistic locking: every write is one conditional UPDATE that checks and bumps ``version``.

There is no read-modify-write window: two writers holding version 3 both send
``UPDATE ... WHERE id = %s AND version = 3``; PostgreSQL serialises them on the row, the first
wins and bumps to 4, the second matches nothing and gets 409 ``version_conflict``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from django.db.models import F
from django.utils import timezone

from apikit.errors import APIError
from apikit.models import TenantModel

M = TypeVar("M", bound=TenantModel)

VERSION_CONFLICT_DETAIL = (
    "This record was changed by someone else since you loaded it (you sent version {sent}, it is "
    "now {current}). Reload it and apply your change again."
)


def version_conflict(*, sent: int, current: int) -> APIError:
    return APIError(
        status=409,
        code="version_conflict",
        detail=VERSION_CONFLICT_DETAIL.format(sent=sent, current=current),
    )


def versioned_update(
    *, instance: M, expected_version: int, changes: dict[str, Any], actor: Any
) -> M:
    """Apply ``changes`` if the row is still at ``expected_version``; returns the fresh row."""
    model = type(instance)
    updated = model.all_objects.filter(pk=instance.pk, version=expected_version).update(
        **changes, version=F("version") + 1, updated_at=timezone.now(), updated_by=actor
    )
    if updated == 0:
        current = model.all_objects.filter(pk=instance.pk).values_list("version", flat=True).first()
        raise version_conflict(sent=expected_version, current=current or 0)
    fresh: M = model.all_objects.get(pk=instance.pk)
    return fresh


def archive(*, instance: M, expected_version: int, actor: Any) -> M:
    """Soft delete: the row disappears from default querysets but stays for history and audit."""
    return versioned_update(
        instance=instance,
        expected_version=expected_version,
        changes={"archived_at": timezone.now()},
        actor=actor,
    )
