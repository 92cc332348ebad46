"""FHIR R4 resources as plain dicts, ready for JSON: keyword-only builders, one per type.

Rules every builder follows (issue 17, item 2; docs/fhir.md):

- no empty strings, lists or objects: an element without a value is left out;
- every reference is ``<Type>/<id>`` on the same base, and resolvable there (``clinical.fhir_api``):
  a Patient's ``managingOrganization`` is the tenant's Organization, a facility is always a
  Location, a clinician always a Practitioner;
- references carry no ``display``: a name changes without a version bump of the referencing
  resource, so a display would go stale behind an unchanged ETag;
- the MRN identifier system is the tenant's own, fixed at provisioning (``Tenant.mrn_system``),
  never derived from a request's host;
- ``telecom.use`` is ``mobile`` only when phonenumbers says MOBILE (FHIR has no landline code,
  and +1 numbers are FIXED_LINE_OR_MOBILE: no ``use`` then); the verdict is stored with the
  phone (``Patient.phone_is_mobile``), parsed here only for a row written without it;
- ``minutesDuration`` only when the appointment lasts a whole minute or more (FHIR requires
  ``>= 1``; a sub-minute booking is still valid in Verdant and keeps ``start``/``end``).

Patient and Appointment builders take the model instance of a read, or the small typed row a Bulk
export fetches (``PatientValues``, ``AppointmentValues``: a third of the CPU of a model instance
per row) — one builder either way.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, NamedTuple

from django.conf import settings

from accounts.models import User
from clinical.models import Appointment, AppointmentStatus, Facility, Patient, Sex
from clinical.projection import PatientProjection
from clinical.rules import phone_is_mobile
from tenants.models import Tenant

PATIENT = "Patient"
APPOINTMENT = "Appointment"
PRACTITIONER = "Practitioner"
LOCATION = "Location"
ORGANIZATION = "Organization"
RESOURCE_TYPES = (PATIENT, APPOINTMENT, PRACTITIONER, LOCATION, ORGANIZATION)

_V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
# RFC 3986 URIs as identifiers: a staff member's stable id, where no national register applies.
URI_SYSTEM = "urn:ietf:rfc:3986"
# FHIR's Patient.gender codes are administrative-gender: male | female | other | unknown.
# Keyed by the choices, which are str: a plain column value (a values_list row) finds them too.
_GENDER: dict[str, str] = {
    Sex.FEMALE: "female",
    Sex.MALE: "male",
    Sex.OTHER: "other",
    Sex.UNKNOWN: "unknown",
}
# Verdant's status machine mapped to FHIR R4 AppointmentStatus.
APPOINTMENT_STATUS: dict[str, str] = {
    AppointmentStatus.SCHEDULED: "booked",
    AppointmentStatus.CHECKED_IN: "checked-in",
    AppointmentStatus.COMPLETED: "fulfilled",
    AppointmentStatus.CANCELLED: "cancelled",
    AppointmentStatus.NO_SHOW: "noshow",
}
_PARTICIPANT_STATUS: dict[str, str] = {AppointmentStatus.CANCELLED: "declined"}
# app-4: a cancellation reason only on cancelled or no-show appointments.
_CANCELLATION_STATUSES: frozenset[str] = frozenset(
    {AppointmentStatus.CANCELLED, AppointmentStatus.NO_SHOW}
)


def instant(value: dt.datetime) -> str:
    """A FHIR ``instant`` (UTC, ``Z``)."""
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def reference(resource_type: str, resource_id: Any) -> dict[str, str]:
    return {"reference": f"{resource_type}/{resource_id}"}


def organization_id(tenant: Tenant) -> str:
    """The tenant's Organization id: its slug (lowercase letters, digits and '-', a valid FHIR
    id, and as permanent as the tenant's host)."""
    return str(tenant.slug)


def mrn_system(tenant: Tenant) -> str:
    """The tenant's MRN identifier system (fixed at provisioning; tenants.services)."""
    if tenant.mrn_system:
        return str(tenant.mrn_system)
    # A registry row made without provisioning (a test factory): the rule provisioning applies.
    return f"https://{settings.BASE_DOMAIN}/fhir/sid/{tenant.slug}/mrn"


def facility_code_system(tenant: Tenant) -> str:
    """The identifier system of the tenant's facility codes (unique per tenant)."""
    return f"https://{settings.BASE_DOMAIN}/fhir/sid/{tenant.slug}/facility"


def _meta(*, version: Any, updated_at: dt.datetime) -> dict[str, str]:
    return {"versionId": str(version), "lastUpdated": instant(updated_at)}


def phone_use(number: str, *, is_mobile: bool | None = None) -> str | None:
    """``mobile`` when phonenumbers classifies ``number`` (E.164) as MOBILE, else None;
    ``is_mobile`` is that verdict as stored with the number (None: not stored, parse it)."""
    if is_mobile is None:
        is_mobile = phone_is_mobile(phone=number)
    return "mobile" if is_mobile else None


def _phone(number: str, *, is_mobile: bool | None) -> dict[str, str]:
    contact = {"system": "phone", "value": number}
    use = phone_use(number, is_mobile=is_mobile)
    if use:
        contact["use"] = use
    return contact


def _human_name(*, given: str, family: str, use: str | None = None) -> dict[str, Any] | None:
    given, family = given.strip(), family.strip()
    if not given and not family:
        return None
    name: dict[str, Any] = {"use": use} if use else {}
    if family:
        name["family"] = family
    if given:
        name["given"] = [given]
    name["text"] = " ".join(part for part in (given, family) if part)
    return name


class PatientValues(NamedTuple):
    """A Patient as a Bulk export fetches it: the columns ``patient_resource`` reads, in a row
    a third as costly as a model instance."""

    id: Any
    version: int
    updated_at: dt.datetime
    mrn: str
    archived_at: dt.datetime | None
    given_name: str
    family_name: str
    phone: str
    phone_is_mobile: bool | None
    sex: str
    birth_date: dt.date
    assigned_clinician_id: Any


class AppointmentValues(NamedTuple):
    """An Appointment as a Bulk export fetches it: the columns ``appointment_resource`` reads."""

    id: Any
    version: int
    updated_at: dt.datetime
    status: str
    cancellation_reason: str
    reason: str
    starts_at: dt.datetime
    ends_at: dt.datetime
    created_at: dt.datetime
    patient_id: Any
    clinician_id: Any
    facility_id: Any


# What the Patient and Appointment builders take: the model instance of a read, or the row.
PatientRow = Patient | PatientValues
AppointmentRow = Appointment | AppointmentValues


def patient_resource(
    *, patient: PatientRow, projection: PatientProjection, tenant: Tenant
) -> dict[str, Any]:
    """The patient as a FHIR R4 Patient, with the fields ``projection`` shows (no ``telecom``
    for a role that may not see the phone)."""
    resource: dict[str, Any] = {
        "resourceType": PATIENT,
        "id": str(patient.id),
        "meta": _meta(version=patient.version, updated_at=patient.updated_at),
        "identifier": [
            {
                "use": "usual",
                "type": {
                    "coding": [
                        {"system": _V2_0203, "code": "MR", "display": "Medical record number"}
                    ]
                },
                "system": mrn_system(tenant),
                "value": patient.mrn,
            }
        ],
        "active": patient.archived_at is None,
    }
    name = _human_name(given=patient.given_name, family=patient.family_name, use="official")
    if name:
        resource["name"] = [name]
    if projection.shows("phone") and patient.phone:
        resource["telecom"] = [_phone(patient.phone, is_mobile=patient.phone_is_mobile)]
    resource["gender"] = _GENDER.get(patient.sex, "unknown")
    resource["birthDate"] = patient.birth_date.isoformat()
    if patient.assigned_clinician_id:
        resource["generalPractitioner"] = [reference(PRACTITIONER, patient.assigned_clinician_id)]
    resource["managingOrganization"] = reference(ORGANIZATION, organization_id(tenant))
    return resource


def appointment_minutes(appointment: AppointmentRow) -> int:
    return int((appointment.ends_at - appointment.starts_at).total_seconds() // 60)


def appointment_resource(*, appointment: AppointmentRow) -> dict[str, Any]:
    """The appointment as a FHIR R4 Appointment: the patient, the clinician (Practitioner) and
    the facility (Location) as participants."""
    status = appointment.status
    participant_status = _PARTICIPANT_STATUS.get(status, "accepted")
    resource: dict[str, Any] = {
        "resourceType": APPOINTMENT,
        "id": str(appointment.id),
        "meta": _meta(version=appointment.version, updated_at=appointment.updated_at),
        "status": APPOINTMENT_STATUS[status],
    }
    if appointment.cancellation_reason.strip() and status in _CANCELLATION_STATUSES:
        resource["cancelationReason"] = {"text": appointment.cancellation_reason.strip()}
    reason = appointment.reason.strip()
    if reason:
        resource["reasonCode"] = [{"text": reason}]
        resource["description"] = reason
    resource["start"] = instant(appointment.starts_at)
    resource["end"] = instant(appointment.ends_at)
    minutes = appointment_minutes(appointment)
    if minutes >= 1:
        resource["minutesDuration"] = minutes
    resource["created"] = appointment.created_at.astimezone(dt.UTC).date().isoformat()
    resource["participant"] = [
        {"actor": reference(kind, actor_id), "required": "required", "status": participant_status}
        for kind, actor_id in (
            (PATIENT, appointment.patient_id),
            (PRACTITIONER, appointment.clinician_id),
            (LOCATION, appointment.facility_id),
        )
    ]
    return resource


def practitioner_resource(*, user: User) -> dict[str, Any]:
    """A staff member (a clinician) as a FHIR R4 Practitioner: the stable id as a URI identifier
    and the name as text (Verdant keeps one full name, not its parts). No e-mail or phone: staff
    contact details are not part of the clinical record."""
    resource: dict[str, Any] = {
        "resourceType": PRACTITIONER,
        "id": str(user.pk),
        "meta": _meta(version=user.version, updated_at=user.updated_at),
        "identifier": [{"system": URI_SYSTEM, "value": f"urn:uuid:{user.pk}"}],
        "active": bool(user.is_active),
    }
    full_name = (user.full_name or "").strip()
    if full_name:
        resource["name"] = [{"text": full_name}]
    return resource


def location_resource(*, facility: Facility, tenant: Tenant) -> dict[str, Any]:
    """A facility as a FHIR R4 Location of the tenant's Organization."""
    resource: dict[str, Any] = {
        "resourceType": LOCATION,
        "id": str(facility.pk),
        "meta": _meta(version=facility.version, updated_at=facility.updated_at),
        "identifier": [{"system": facility_code_system(tenant), "value": facility.code}],
        "status": "active" if facility.archived_at is None else "inactive",
        "name": facility.name,
        "mode": "instance",
    }
    if facility.phone.strip():
        resource["telecom"] = [{"system": "phone", "value": facility.phone.strip(), "use": "work"}]
    if facility.address.strip():
        resource["address"] = {"use": "work", "text": facility.address.strip()}
    resource["managingOrganization"] = reference(ORGANIZATION, organization_id(tenant))
    return resource


def organization_version(tenant: Tenant) -> str:
    """The Organization's versionId: a digest of what the resource shows (the tenant row has no
    version counter), so it changes exactly when the content does."""
    content = f"{tenant.slug}\n{tenant.name}\n{tenant.status}"
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def organization_resource(*, tenant: Tenant) -> dict[str, Any]:
    """The tenant as a FHIR R4 Organization (the clinic network)."""
    resource: dict[str, Any] = {
        "resourceType": ORGANIZATION,
        "id": organization_id(tenant),
        "meta": _meta(version=organization_version(tenant), updated_at=tenant.updated_at),
        "identifier": [
            {
                "system": f"https://{settings.BASE_DOMAIN}/fhir/sid/organization",
                "value": tenant.slug,
            }
        ],
        "active": tenant.status == Tenant.Status.ACTIVE,
        "type": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                        "code": "prov",
                        "display": "Healthcare Provider",
                    }
                ]
            }
        ],
    }
    if tenant.name.strip():
        resource["name"] = tenant.name.strip()
    return resource
