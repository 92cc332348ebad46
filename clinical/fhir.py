"""FHIR R4 representations of patients and appointments (plain dicts, ready for JSON).

Validated in the tests with fhir.resources' R4B models. Identifiers use the tenant's MRN system;
local ids are the Verdant UUIDs.
"""

from __future__ import annotations

from typing import Any

from clinical.models import Appointment, AppointmentStatus, Patient, Sex
from clinical.projection import PatientProjection

MRN_SYSTEM = "urn:verdant:mrn"
# FHIR's Patient.gender codes are administrative-gender: male | female | other | unknown.
_GENDER = {Sex.FEMALE: "female", Sex.MALE: "male", Sex.OTHER: "other", Sex.UNKNOWN: "unknown"}
# Verdant's status machine mapped to FHIR R4 AppointmentStatus.
_APPOINTMENT_STATUS = {
    AppointmentStatus.SCHEDULED: "booked",
    AppointmentStatus.CHECKED_IN: "checked-in",
    AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.NO_SHOW: "noshow",
}
_PARTICIPANT_STATUS = {
    AppointmentStatus.CANCELLED: "declined",
}


def _instant(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def patient_resource(patient: Patient, *, projection: PatientProjection) -> dict[str, Any]:
    """The patient as a FHIR R4 Patient, with the fields ``projection`` shows (no ``telecom`` for
    a role that may not see the phone)."""
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(patient.pk),
        "meta": {"versionId": str(patient.version), "lastUpdated": _instant(patient.updated_at)},
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "MR",
                            "display": "Medical record number",
                        }
                    ]
                },
                "system": MRN_SYSTEM,
                "value": patient.mrn,
            }
        ],
        "active": patient.archived_at is None,
        "name": [
            {
                "use": "official",
                "family": patient.family_name,
                "given": [patient.given_name],
                "text": f"{patient.given_name} {patient.family_name}",
            }
        ],
        "gender": _GENDER.get(Sex(patient.sex), "unknown"),
        "birthDate": patient.birth_date.isoformat(),
        "managingOrganization": {
            "reference": f"Organization/{patient.facility_id}",
            "display": patient.facility.name,
        },
    }
    if projection.shows("phone") and patient.phone:
        resource["telecom"] = [{"system": "phone", "value": patient.phone, "use": "mobile"}]
    if patient.assigned_clinician_id:
        clinician = patient.assigned_clinician
        resource["generalPractitioner"] = [
            {
                "reference": f"Practitioner/{patient.assigned_clinician_id}",
                "display": clinician.full_name if clinician else "",
            }
        ]
    return resource


def appointment_resource(appointment: Appointment) -> dict[str, Any]:
    participant_status = _PARTICIPANT_STATUS.get(AppointmentStatus(appointment.status), "accepted")
    patient = appointment.patient
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": str(appointment.pk),
        "meta": {
            "versionId": str(appointment.version),
            "lastUpdated": _instant(appointment.updated_at),
        },
        "status": _APPOINTMENT_STATUS[AppointmentStatus(appointment.status)],
        "start": _instant(appointment.starts_at),
        "end": _instant(appointment.ends_at),
        "minutesDuration": int((appointment.ends_at - appointment.starts_at).total_seconds() // 60),
        "created": appointment.created_at.date().isoformat(),
        "participant": [
            {
                "actor": {
                    "reference": f"Patient/{appointment.patient_id}",
                    "display": f"{patient.given_name} {patient.family_name}",
                },
                "required": "required",
                "status": participant_status,
            },
            {
                "actor": {
                    "reference": f"Practitioner/{appointment.clinician_id}",
                    "display": appointment.clinician.full_name,
                },
                "required": "required",
                "status": participant_status,
            },
            {
                "actor": {
                    "reference": f"Location/{appointment.facility_id}",
                    "display": appointment.facility.name,
                },
                "required": "required",
                "status": participant_status,
            },
        ],
    }
    if appointment.reason:
        resource["description"] = appointment.reason
        resource["reasonCode"] = [{"text": appointment.reason}]
    if appointment.cancellation_reason:
        resource["cancelationReason"] = {"text": appointment.cancellation_reason}
    return resource
