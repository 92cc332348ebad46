"""Reads behind the FHIR resources that the REST API has no list of its own for.

Patients, appointments and facilities (Locations) are read through ``clinical.selectors``, the
REST API's own scoped querysets; this module adds the Practitioners.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import User
from accounts.roles import Role
from clinical.models import Appointment, Patient


def practitioner_scope(*, user: Any) -> QuerySet[User]:
    """The tenant's clinicians, and anyone else an appointment or a patient names as their
    clinician (a clinician whose role changed later must still resolve). Visible to every role
    that may read patients or appointments: a Practitioner is what those resources reference,
    and it carries a name only (no contact details)."""
    return User.objects.filter(
        Q(role=Role.CLINICIAN)
        | Exists(Appointment.objects.filter(clinician=OuterRef("pk")))
        | Exists(Patient.objects.filter(assigned_clinician=OuterRef("pk")))
    )
