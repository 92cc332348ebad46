"""Who may see which rows within a tenant: the one place object scoping is decided.

Model-level rights come from the role matrix (accounts.roles, checked by RolePermission).
Object-level rights are granted on *container* objects (a Facility, a Farm) at two levels,
``view`` and ``manage``, with django-guardian; every row under a container inherits them.
tenant_admin sees every container of its tenant.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.db.models import Model, QuerySet
from guardian.shortcuts import assign_perm, get_objects_for_user, remove_perm

from accounts.roles import Role


class AccessLevel(StrEnum):
    VIEW = "view"
    MANAGE = "manage"


def _codename(model: type[Model], level: AccessLevel) -> str:
    return f"{model._meta.app_label}.{level}_{model._meta.model_name}"


def sees_everything(user: Any) -> bool:
    return bool(user.is_active and getattr(user, "role", "") == Role.TENANT_ADMIN)


def visible_containers(
    *, user: Any, container_model: type[Model], level: AccessLevel = AccessLevel.VIEW
) -> QuerySet[Any]:
    """Containers ``user`` holds ``level`` on (``manage`` implies ``view``)."""
    if sees_everything(user):
        return container_model._default_manager.all()
    levels = [AccessLevel.MANAGE] if level == AccessLevel.MANAGE else list(AccessLevel)
    return get_objects_for_user(
        user,
        [_codename(container_model, lvl) for lvl in levels],
        klass=container_model,
        any_perm=True,
        with_superuser=False,
        accept_global_perms=False,
    )


def scope_to_containers(
    queryset: QuerySet[Any],
    *,
    user: Any,
    container_field: str,
    container_model: type[Model],
    level: AccessLevel = AccessLevel.VIEW,
) -> QuerySet[Any]:
    """``queryset`` narrowed to rows under containers the user may access (one subquery)."""
    if sees_everything(user):
        return queryset
    containers = visible_containers(user=user, container_model=container_model, level=level)
    return queryset.filter(**{f"{container_field}__in": containers.values("pk")})


def container_access_grant(*, user: Any, container: Model, level: AccessLevel) -> None:
    assign_perm(_codename(type(container), level), user, container)


def container_access_revoke(*, user: Any, container: Model, level: AccessLevel) -> None:
    remove_perm(_codename(type(container), level), user, container)


def can_manage(*, user: Any, container: Model) -> bool:
    return sees_everything(user) or bool(
        user.has_perm(_codename(type(container), AccessLevel.MANAGE), container)
    )
