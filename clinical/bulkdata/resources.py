"""What each exported resource type reads and how a row becomes a resource: one ``Source`` per
type, built for the requester (their facilities, their patient projection), so an export shows
exactly what that user's reads show.

The builders are the FHIR module's; this file only chooses the rows, ordered by primary key and
narrowed by ``_since`` (rows changed after that instant). Patients and Appointments — nearly all
of an export — are fetched as the small typed rows their builder also takes
(``fhir.PatientValues``, ``fhir.AppointmentValues``) instead of model instances, by
``clinical.fhir.selectors.builder_rows``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from apikit.tenancy import current_schema_name
from clinical import selectors
from clinical.fhir import resources as fhir
from clinical.fhir.selectors import builder_rows, practitioner_scope
from clinical.models import Appointment, Patient
from clinical.projection import patient_projection
from tenants.models import Tenant


@dataclass(frozen=True)
class Source:
    resource_type: str
    # Rows in primary-key order, read through a server-side cursor by the writer.
    rows: Callable[[], Iterator[Any]]
    build: Callable[[Any], dict[str, Any]]
    # The model whose ids the export's audit events name (None: not patient data).
    audited_model: type[Patient] | type[Appointment] | None = None


def _since(queryset: QuerySet[Any], since: datetime | None) -> QuerySet[Any]:
    return queryset if since is None else queryset.filter(updated_at__gt=since)


def _iterate(queryset: QuerySet[Any], *, chunk_size: int) -> Callable[[], Iterator[Any]]:
    return lambda: queryset.order_by("pk").iterator(chunk_size=chunk_size)


def _iterate_rows(
    queryset: QuerySet[Any],
    row_type: type[fhir.PatientValues] | type[fhir.AppointmentValues],
    *,
    chunk_size: int,
) -> Callable[[], Iterator[Any]]:
    """``row_type`` rows of the queryset's rows, in primary-key order."""
    rows = builder_rows(queryset, row_type)
    make = row_type._make
    return lambda: map(make, rows.iterator(chunk_size=chunk_size))


def export_sources(
    *, user: Any, resource_types: tuple[str, ...], since: datetime | None, chunk_size: int
) -> list[Source]:
    """The sources of ``resource_types`` for ``user``, in the given order."""
    projection = patient_projection(user=user)
    # The row itself (the connection may carry only the schema name, e.g. in a worker).
    tenant = Tenant.objects.get(schema_name=current_schema_name())

    def patients() -> QuerySet[Patient]:
        # The builders read foreign keys by id (references carry no display): no joins.
        return selectors.patient_scope(user=user)

    def appointments() -> QuerySet[Appointment]:
        return selectors.appointment_scope(user=user)

    def organization() -> Iterator[Any]:
        if since is None or tenant.updated_at > since:
            yield tenant

    factories: dict[str, Callable[[], Source]] = {
        "Organization": lambda: Source(
            "Organization", organization, lambda t: fhir.organization_resource(tenant=t)
        ),
        "Location": lambda: Source(
            "Location",
            _iterate(
                _since(selectors.facility_list(user=user), since),
                chunk_size=chunk_size,
            ),
            lambda f: fhir.location_resource(facility=f, tenant=tenant),
        ),
        "Practitioner": lambda: Source(
            "Practitioner",
            _iterate(_since(practitioner_scope(user=user), since), chunk_size=chunk_size),
            lambda u: fhir.practitioner_resource(user=u),
        ),
        "Patient": lambda: Source(
            "Patient",
            _iterate_rows(_since(patients(), since), fhir.PatientValues, chunk_size=chunk_size),
            lambda p: fhir.patient_resource(patient=p, projection=projection, tenant=tenant),
            Patient,
        ),
        "Appointment": lambda: Source(
            "Appointment",
            _iterate_rows(
                _since(appointments(), since), fhir.AppointmentValues, chunk_size=chunk_size
            ),
            lambda a: fhir.appointment_resource(appointment=a),
            Appointment,
        ),
    }
    return [factories[name]() for name in resource_types]
