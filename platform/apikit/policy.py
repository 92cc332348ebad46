"""Who may do what within a tenant: the one policy module.

1. The role -> permission matrix (``ROLE_PERMISSIONS``): model-level rights as Django-style
   ``"<app_label>.<action>_<model>"`` strings, checked by apikit.permissions.RolePermission and by
   Django admin through accounts.backends.RolePermissionBackend. They live in code, not in
   per-schema Group rows, so a role means the same in every tenant and changes with a deploy.
2. Object scoping: rights granted on *container* objects (a Facility, a Farm) at two levels,
   ``view`` and ``manage``, with django-guardian; every row under a container inherits them.
   tenant_admin sees every container of its tenant.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from django.db.models import Model, QuerySet

from accounts.roles import Role
from apikit.access_events import user_access_changed

# --- 1. the role matrix ------------------------------------------------------------------------


def _perms(app_label: str, model: str, *actions: str) -> frozenset[str]:
    return frozenset(f"{app_label}.{action}_{model}" for action in actions)


_ALL = ("view", "add", "change", "delete")
_CLINICAL_MODELS = (
    "facility",
    "patient",
    "appointment",
    "prescription",
    "prescriptionitem",
    "patientdocument",
    "remindermessage",
)
_FARM_MODELS = ("farm", "field", "crop", "planting", "observation", "harvest")
# FHIR Bulk Data export jobs (clinical.bulkdata): a Patient-level export by the roles that read
# every clinical model, within their facilities and their patient projection; the system-level
# export of everything (``export_system``) by tenant admins only. Receptionists export nothing.
_BULK_EXPORT = _perms("clinical", "bulkexport", "view", "add", "delete")
BULK_EXPORT_SYSTEM = "clinical.export_system"


def _view_all(app_label: str, models_: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(_perms(app_label, m, "view") for m in models_))


def _everything(app_label: str, models_: tuple[str, ...]) -> frozenset[str]:
    return frozenset().union(*(_perms(app_label, m, *_ALL) for m in models_))


ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    Role.TENANT_ADMIN: (
        _perms("accounts", "user", *_ALL)
        | _everything("clinical", _CLINICAL_MODELS)
        | _everything("farms", _FARM_MODELS)
        | _perms("audit", "auditevent", "view")
        | _perms("sync", "device", *_ALL)
        # The organisation's reminder rules: one row, changed (never added or deleted) by the
        # tenant's admins only, through the API and the Django admin alike.
        | _perms("clinical", "remindersettings", "view", "change")
        # The organisation's own SMS sender (notify.SmsSender): the same, plus going back to the
        # deployment's sender.
        | _perms("notify", "smssender", "view", "change", "delete")
        | _BULK_EXPORT
        | {BULK_EXPORT_SYSTEM}
    ),
    Role.CLINICIAN: (
        _view_all("clinical", _CLINICAL_MODELS)
        | _perms("clinical", "patient", "add", "change")
        # delete = archive (soft) a booking, prescription or document entered in error; hard
        # deletes stay tenant_admin-only (checked by the clinical views).
        | _perms("clinical", "appointment", "add", "change", "delete")
        | _perms("clinical", "prescription", "add", "change", "delete")
        | _perms("clinical", "prescriptionitem", "add", "change", "delete")
        | _perms("clinical", "patientdocument", "add", "delete")
        | _BULK_EXPORT
    ),
    Role.NURSE: (
        _view_all("clinical", _CLINICAL_MODELS)
        | _perms("clinical", "patient", "add", "change")
        | _perms("clinical", "appointment", "add", "change")
        | _perms("clinical", "patientdocument", "add")
        | _BULK_EXPORT
    ),
    Role.RECEPTIONIST: (
        _perms("clinical", "facility", "view")
        | _perms("clinical", "patient", "view", "add", "change")
        | _perms("clinical", "appointment", "view", "add", "change")
    ),
    Role.AGRONOMIST: (_everything("farms", _FARM_MODELS) - _perms("farms", "farm", "delete")),
    Role.FIELD_AGENT: (
        _view_all("farms", _FARM_MODELS)
        | _perms("farms", "observation", "add")
        | _perms("farms", "harvest", "add")
        | _perms("sync", "device", "add", "view")
    ),
    Role.VIEWER: (
        _view_all("clinical", _CLINICAL_MODELS) | _view_all("farms", _FARM_MODELS) | _BULK_EXPORT
    ),
}


def permissions_for(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(role, frozenset())


def is_staff_role(role: str) -> bool:
    """Only tenant admins use the tenant's Django admin."""
    return role == Role.TENANT_ADMIN


# --- 2. object scoping -------------------------------------------------------------------------


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
    from guardian.shortcuts import get_objects_for_user

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


# Every grant change goes through the two functions below, so this is where open WebSockets learn
# of it: the user's sockets in this tenant re-check once the change commits (issue 18, item 6).


def container_access_grant(*, user: Any, container: Model, level: AccessLevel) -> None:
    from guardian.shortcuts import assign_perm

    assign_perm(_codename(type(container), level), user, container)
    user_access_changed(user_id=user.pk)


def container_access_revoke(*, user: Any, container: Model, level: AccessLevel) -> None:
    from guardian.shortcuts import remove_perm

    remove_perm(_codename(type(container), level), user, container)
    user_access_changed(user_id=user.pk)


def can_manage(*, user: Any, container: Model) -> bool:
    return sees_everything(user) or bool(
        user.has_perm(_codename(type(container), AccessLevel.MANAGE), container)
    )
