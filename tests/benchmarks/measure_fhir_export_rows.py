"""Where a Bulk Data export's CPU goes, per row: fetching Patients and Appointments as Django models
through a server-side cursor, building and serialising them, the phone-type decision alone, and the
alternatives tried (``.only()``, ``values_list()``), in CPU microseconds (``time.process_time``), so
the figures hold on a shared machine. Reads the tenant ``bench_fhir_export`` left behind:

    BENCH_KEEP_DATABASE=1 BENCH_PATIENTS=20000 DJANGO_SETTINGS_MODULE=settings.dev \\
        .venv/bin/python -m tests.benchmarks.bench_fhir_export --output /tmp/r.json
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/verdant_bench_fhir_export \\
        .venv/bin/python -m tests.benchmarks.measure_fhir_export_rows
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from tests.benchmarks.common import django_setup, say

ROWS = int(os.environ.get("BENCH_ROWS", "20000"))
SCHEMA = "t_benchbulk"
PATIENT_FIELDS = (
    "id", "version", "updated_at", "mrn", "archived_at", "given_name", "family_name", "phone",
    "sex", "birth_date", "assigned_clinician_id",
)  # fmt: skip
APPOINTMENT_FIELDS = (
    "id", "version", "updated_at", "status", "cancellation_reason", "reason", "starts_at",
    "ends_at", "created_at", "patient_id", "clinician_id", "facility_id",
)  # fmt: skip


def cpu_per_row(label: str, action: Callable[[], Any]) -> None:
    started = time.process_time()
    action()
    say(f"{label}: {(time.process_time() - started) / ROWS * 1e6:.1f} µs of CPU per row")


def main() -> int:
    os.environ.setdefault("DEBUG", "false")
    django_setup("settings.dev")
    from django.db import transaction
    from django_tenants.utils import schema_context

    from accounts.models import User
    from apikit.json import dumps
    from clinical.fhir import resources as fhir
    from clinical.models import Appointment, Patient
    from clinical.projection import patient_projection
    from tenants.models import Tenant

    with schema_context(SCHEMA), transaction.atomic():
        projection = patient_projection(user=User.objects.get(email="admin@benchbulk.test"))
        tenant = Tenant.objects.get(schema_name=SCHEMA)
        patients: list[Patient] = []
        appointments: list[Appointment] = []
        patient_rows = Patient.objects.defer("search_vector").order_by("pk")[:ROWS]
        appointment_rows = Appointment.objects.order_by("pk")[:ROWS]
        cpu_per_row("Patient fetch", lambda: patients.extend(patient_rows.iterator(2000)))
        cpu_per_row(
            "Patient build + serialise",
            lambda: [
                dumps(fhir.patient_resource(patient=p, projection=projection, tenant=tenant))
                for p in patients
            ],
        )
        cpu_per_row("Patient phone type alone", lambda: [fhir.phone_use(p.phone) for p in patients])
        cpu_per_row(
            "Appointment fetch", lambda: appointments.extend(appointment_rows.iterator(2000))
        )
        cpu_per_row(
            "Appointment build + serialise",
            lambda: [dumps(fhir.appointment_resource(appointment=a)) for a in appointments],
        )
        only_patients = Patient.objects.only(*PATIENT_FIELDS).order_by("pk")[:ROWS]
        only_appointments = Appointment.objects.only(*APPOINTMENT_FIELDS).order_by("pk")[:ROWS]
        cpu_per_row("Patient fetch, .only()", lambda: list(only_patients.iterator(2000)))
        cpu_per_row("Appointment fetch, .only()", lambda: list(only_appointments.iterator(2000)))
        cpu_per_row(
            "Appointment fetch, values_list()",
            lambda: list(appointment_rows.values_list().iterator(2000)),
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
