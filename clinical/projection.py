"""Which patient fields each role may see: the one definition (issue 21, item 3).

Every way a patient leaves the server reads it: the REST list (the columns fetched,
``selectors.patient_list_queryset``) and detail (the serializer), FHIR (one resource and the
NDJSON export, ``clinical.fhir``), the ranked search (``selectors.patient_search``: a phone is
matched only for roles that may see it), the ordering and filter allowlists and the ETag
(``PatientViewSet.hidden_fields``, applied by apikit), and the sync pull (``clinical/sync.py``).

A field not named in ``RESTRICTED_PATIENT_FIELDS`` is seen by every role that may read patients at
all (the role matrix in ``apikit.policy`` decides that). A restricted field is seen only by the
roles listed for it; for everyone else it is not fetched, not rendered, not searched, not
orderable or filterable (400, like an unknown field), and the ETag names it as missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from accounts.roles import Role

# Roles that contact patients: they see their phone numbers.
PHONE_ROLES: frozenset[str] = frozenset(
    {Role.TENANT_ADMIN, Role.CLINICIAN, Role.NURSE, Role.RECEPTIONIST}
)

# Restricted patient field (model field name, also its name on the wire) -> the roles that may
# see it. Read at each call, so a change here reaches every surface at once.
RESTRICTED_PATIENT_FIELDS: Mapping[str, frozenset[str]] = MappingProxyType({"phone": PHONE_ROLES})


@dataclass(frozen=True)
class PatientProjection:
    """The patient fields one user may not see (``hidden``); every other field is visible."""

    hidden: frozenset[str]

    def shows(self, field: str) -> bool:
        return field not in self.hidden

    def visible(self, fields: Iterable[str]) -> frozenset[str]:
        """The names among ``fields`` this projection shows."""
        return frozenset(name for name in fields if name not in self.hidden)


def patient_projection(*, user: Any) -> PatientProjection:
    """The projection of ``user``'s role (no query: the role is on the user). A user without a
    role (anonymous, a platform operator) sees no restricted field."""
    role = getattr(user, "role", None)
    return PatientProjection(
        hidden=frozenset(
            name for name, roles in RESTRICTED_PATIENT_FIELDS.items() if role not in roles
        )
    )


def patient_projection_narrowest() -> PatientProjection:
    """Every restricted field hidden: what a representation falls back to when no projection was
    given (fail closed)."""
    return PatientProjection(hidden=frozenset(RESTRICTED_PATIENT_FIELDS))
