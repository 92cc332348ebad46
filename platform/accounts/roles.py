"""Roles and the one role -> permission matrix. Every permission check in Verdant reads this.

Permissions are Django-style ``"<app_label>.<action>_<model>"`` strings, so Django admin and DRF
model permissions work unchanged; they live in code, not in per-schema Group rows, so a role means
the same thing in every tenant and changes with a deploy.
"""

from django.db import models


class Role(models.TextChoices):
    TENANT_ADMIN = "tenant_admin", "Tenant admin"
    CLINICIAN = "clinician", "Clinician"
    NURSE = "nurse", "Nurse"
    RECEPTIONIST = "receptionist", "Receptionist"
    AGRONOMIST = "agronomist", "Agronomist"
    FIELD_AGENT = "field_agent", "Field agent"
    VIEWER = "viewer", "Viewer"


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
    ),
    Role.CLINICIAN: (
        _view_all("clinical", _CLINICAL_MODELS)
        | _perms("clinical", "patient", "add", "change")
        | _perms("clinical", "appointment", "add", "change")
        | _perms("clinical", "prescription", "add", "change")
        | _perms("clinical", "prescriptionitem", "add", "change", "delete")
        | _perms("clinical", "patientdocument", "add")
    ),
    Role.NURSE: (
        _view_all("clinical", _CLINICAL_MODELS)
        | _perms("clinical", "patient", "add", "change")
        | _perms("clinical", "appointment", "add", "change")
        | _perms("clinical", "patientdocument", "add")
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
    Role.VIEWER: _view_all("clinical", _CLINICAL_MODELS) | _view_all("farms", _FARM_MODELS),
}


def permissions_for(role: str) -> frozenset[str]:
    return ROLE_PERMISSIONS.get(role, frozenset())


def is_staff_role(role: str) -> bool:
    """Only tenant admins use the tenant's Django admin."""
    return role == Role.TENANT_ADMIN
