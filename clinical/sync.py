"""Clinical tables offered to field apps (platform/sync/registry.py describes the contract).

Rows are scoped by facility grants (``apikit.policy``). Conflicts on clinical rows are never
merged automatically: the client gets the server's copy (``reject``). Patient phone numbers are
only sent to roles that contact patients (admin, clinician, nurse, receptionist).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from accounts.roles import Role
from apikit.policy import AccessLevel, scope_to_containers
from clinical.models import Appointment, Facility, Patient
from sync.registry import (
    COMMON_SERVER_MANAGED,
    ConflictPolicy,
    SyncTable,
    projection_all,
    projection_hiding,
    register,
)

_BASE = {"id": "id", "version": "version", "created_at": "created_at", "updated_at": "updated_at"}

# Roles whose devices receive patients' phone numbers (everyone else gets the row without it).
PHONE_ROLES = frozenset({Role.TENANT_ADMIN, Role.CLINICIAN, Role.NURSE, Role.RECEPTIONIST})


def _facility_scope(user: Any, queryset: QuerySet[Any]) -> QuerySet[Any]:
    return scope_to_containers(
        queryset.filter(facility__archived_at__isnull=True),
        user=user,
        container_field="facility",
        container_model=Facility,
        level=AccessLevel.VIEW,
    )


PATIENT_FIELDS = {
    **_BASE,
    "mrn": "mrn",
    "given_name": "given_name",
    "family_name": "family_name",
    "birth_date": "birth_date",
    "sex": "sex",
    "phone": "phone",
    "sms_opt_in": "sms_opt_in",
    "facility_id": "facility_id",
    "assigned_clinician_id": "assigned_clinician_id",
    "visit_count": "visit_count",
}
APPOINTMENT_FIELDS = {
    **_BASE,
    "patient_id": "patient_id",
    "clinician_id": "clinician_id",
    "facility_id": "facility_id",
    "starts_at": "starts_at",
    "ends_at": "ends_at",
    "status": "status",
    "reason": "reason",
    "checked_in_at": "checked_in_at",
    "completed_at": "completed_at",
    "cancelled_at": "cancelled_at",
    "cancellation_reason": "cancellation_reason",
}

PATIENTS = register(
    SyncTable(
        name="patients",
        model=Patient,
        fields=PATIENT_FIELDS,
        server_managed=COMMON_SERVER_MANAGED | {"visit_count"},
        conflict_policy=ConflictPolicy.REJECT,
        scope=_facility_scope,
        projection=projection_hiding(
            PATIENT_FIELDS, hidden=frozenset({"phone"}), unless_roles=PHONE_ROLES
        ),
        view_permission="clinical.view_patient",
        container_model=Facility,
        container_path="facility_id",
        sensitive_fields=frozenset({"phone"}),
    )
)
APPOINTMENTS = register(
    SyncTable(
        name="appointments",
        model=Appointment,
        fields=APPOINTMENT_FIELDS,
        # Status timestamps are set by the status machine on the server.
        server_managed=COMMON_SERVER_MANAGED | {"checked_in_at", "completed_at", "cancelled_at"},
        conflict_policy=ConflictPolicy.REJECT,
        scope=_facility_scope,
        projection=projection_all(APPOINTMENT_FIELDS),
        view_permission="clinical.view_appointment",
        container_model=Facility,
        container_path="facility_id",
        depends_on=("patients",),
    )
)
