"""Reads behind the FHIR resources that the REST API has no list of its own for.

Patients, appointments and facilities (Locations) are read through ``clinical.selectors``, the
REST API's own scoped querysets; this module adds the Practitioners, and the query that fetches
Patients and Appointments as the small typed rows their builders also take (``builder_rows``:
the Bulk export and the REST API's NDJSON export).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import Exists, F, Func, OuterRef, Q, QuerySet

from accounts.models import User
from accounts.roles import Role
from clinical.fhir.resources import AppointmentValues, PatientValues
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


class _IsoInstant(models.DateTimeField):
    """An aware datetime read from PostgreSQL's ISO 8601 text of a ``timestamptz``."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> Any:
        return None if value is None else datetime.fromisoformat(value)


def _iso_instant(column: str) -> Func:
    # to_json renders a timestamptz as ISO 8601 whatever the session's DateStyle is.
    return Func(
        F(column), template="(to_json(%(expressions)s) #>> '{}')", output_field=_IsoInstant()
    )


def builder_rows(
    queryset: QuerySet[Any], row_type: type[PatientValues] | type[AppointmentValues]
) -> QuerySet[Any]:
    """The queryset's rows as tuples of ``row_type``'s columns, in primary-key order (wrap each
    in ``row_type._make``): a third of a model instance's CPU per row. Every ``timestamptz`` is
    rendered as ISO 8601 text by PostgreSQL and parsed by ``datetime.fromisoformat`` (Django's
    psycopg loader for ``timestamptz`` parses in Python: 4 µs a value, 0.5 this way)."""
    meta = queryset.model._meta
    instants = {
        name for name in row_type._fields if isinstance(meta.get_field(name), models.DateTimeField)
    }
    # Annotations cannot reuse a field's name: fetched under another, positions keep the order.
    columns = [f"iso_{name}" if name in instants else name for name in row_type._fields]
    return (
        queryset.annotate(**{f"iso_{name}": _iso_instant(name) for name in instants})
        .order_by("pk")
        .values_list(*columns)
    )
