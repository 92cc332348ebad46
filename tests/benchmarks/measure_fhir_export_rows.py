"""Where a Bulk Data export's CPU goes, per row: fetching Patients and Appointments through a
server-side cursor as Django models (before) and as the typed rows the export now reads
(``fhir.PatientValues`` / ``AppointmentValues``, timestamps parsed from ISO text), building and
serialising them (with the phone's stored MOBILE verdict, without it, and from a model), and the
phone-type decision alone, in CPU microseconds (``time.process_time``) of this process and of its
PostgreSQL backend, so the figures hold on a shared machine. Reads the tenant
``bench_fhir_export`` left behind:

    BENCH_KEEP_DATABASE=1 BENCH_PATIENTS=20000 DJANGO_SETTINGS_MODULE=settings.dev \\
        .venv/bin/python -m tests.benchmarks.bench_fhir_export --output /tmp/r.json
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/verdant_bench_fhir_export \\
        .venv/bin/python -m tests.benchmarks.measure_fhir_export_rows
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from itertools import islice
from typing import Any

from tests.benchmarks.common import cpu_seconds, django_setup, say

ROWS = int(os.environ.get("BENCH_ROWS", "20000"))
SCHEMA = "t_benchbulk"


def backend_cpu_seconds() -> float:
    """CPU time of this connection's PostgreSQL backend (same host): what a second export process
    would compete with for the other core."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cpu_seconds(cursor.fetchone()[0])


def cpu_per_row(label: str, action: Callable[[], Any]) -> None:
    backend = backend_cpu_seconds()
    started = time.process_time()
    action()
    spent = time.process_time() - started
    backend = backend_cpu_seconds() - backend
    say(
        f"{label}: {spent / ROWS * 1e6:.1f} µs of CPU per row here, "
        f"{backend / ROWS * 1e6:.1f} in the PostgreSQL backend"
    )


def main() -> int:
    os.environ.setdefault("DEBUG", "false")
    django_setup("settings.dev")
    from django.db import transaction
    from django_tenants.utils import schema_context

    from accounts.models import User
    from apikit.json import dumps
    from clinical.bulkdata.resources import export_sources
    from clinical.fhir import resources as fhir
    from clinical.models import Appointment, Patient
    from clinical.projection import patient_projection
    from tenants.models import Tenant

    with schema_context(SCHEMA), transaction.atomic():
        admin = User.objects.get(email="admin@benchbulk.test")
        projection = patient_projection(user=admin)
        tenant = Tenant.objects.get(schema_name=SCHEMA)
        patients: list[Any] = []
        appointments: list[Any] = []
        rows: list[Any] = []
        patient_models = Patient.objects.defer("search_vector").order_by("pk")[:ROWS]
        appointment_models = Appointment.objects.order_by("pk")[:ROWS]
        # What the export fetches now: its own sources (clinical.bulkdata.resources), typed rows.
        patient_rows, appointment_rows = (
            source.rows
            for source in export_sources(
                user=admin, resource_types=("Patient", "Appointment"), since=None, chunk_size=2000
            )
        )

        def build_patients(items: list[Any]) -> None:
            for p in items:
                dumps(fhir.patient_resource(patient=p, projection=projection, tenant=tenant))

        def build_appointments(items: list[Any]) -> None:
            for a in items:
                dumps(fhir.appointment_resource(appointment=a))

        cpu_per_row("Patient fetch, model", lambda: rows.extend(patient_models.iterator(2000)))
        cpu_per_row(
            "Patient fetch, export row", lambda: patients.extend(islice(patient_rows(), ROWS))
        )
        cpu_per_row("Patient build + serialise, export row", lambda: build_patients(patients))
        unknown = [p._replace(phone_is_mobile=None) for p in patients]
        cpu_per_row(
            "Patient build + serialise, verdict not stored", lambda: build_patients(unknown)
        )
        cpu_per_row("Patient build + serialise, model", lambda: build_patients(rows))
        cpu_per_row("Patient phone type alone", lambda: [fhir.phone_use(p.phone) for p in patients])
        rows.clear()
        cpu_per_row(
            "Appointment fetch, model", lambda: rows.extend(appointment_models.iterator(2000))
        )
        cpu_per_row(
            "Appointment fetch, export row",
            lambda: appointments.extend(islice(appointment_rows(), ROWS)),
        )
        cpu_per_row(
            "Appointment build + serialise, export row", lambda: build_appointments(appointments)
        )
        cpu_per_row("Appointment build + serialise, model", lambda: build_appointments(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
