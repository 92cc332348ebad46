"""The CapabilityStatement (``GET [base]/metadata``), built from the search parameters the
resource types really apply (``params``), so the two cannot drift apart.

Served without a token (FHIR clients read it before they authenticate). It advertises no SMART
OAuth URIs: fhirclient switches to an OAuth flow when it finds them, and this server takes the
tenant's own bearer tokens (docs/fhir.md). It ``instantiates`` the Bulk Data Access
CapabilityStatement; the export operations are listed in ``SYSTEM_OPERATIONS`` and
``RESOURCE_OPERATIONS`` (the Bulk Data export adds its routes to ``urls``).
"""

from __future__ import annotations

from typing import Any

from clinical.fhir import resources as fhir
from clinical.fhir_api import params
from clinical.projection import PatientProjection
from tenants.models import Tenant

FHIR_VERSION = "4.0.1"
# When this statement last changed in substance (FHIR: ``date``); moved with the code, not per
# request, so clients caching it see a stable document.
STATEMENT_DATE = "2026-12-06"
BULK_DATA_CAPABILITY = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
SYSTEM_OPERATIONS: tuple[dict[str, str], ...] = (
    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
)
RESOURCE_OPERATIONS: dict[str, tuple[dict[str, str], ...]] = {
    fhir.PATIENT: (
        {
            "name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
        },
    ),
}
# What each resource type is here.
_PROFILES = {
    fhir.PATIENT: "Patients of the organisation's facilities the caller may view.",
    fhir.APPOINTMENT: "Appointments at the facilities the caller may view.",
    fhir.PRACTITIONER: "The organisation's clinicians.",
    fhir.LOCATION: "The organisation's facilities the caller may view.",
    fhir.ORGANIZATION: "The organisation itself (id: its slug).",
}
# Every restricted field shown: the statement lists every parameter; docs say who gets phone.
_EVERYTHING = PatientProjection(hidden=frozenset())


def _search_params(tenant: Tenant) -> dict[str, params.Params]:
    return {
        fhir.PATIENT: params.patient_params(tenant=tenant, projection=_EVERYTHING),
        fhir.APPOINTMENT: params.appointment_params(),
        fhir.PRACTITIONER: params.practitioner_params(),
        fhir.LOCATION: params.location_params(tenant=tenant),
        fhir.ORGANIZATION: params.organization_params(),
    }


def capability_statement(*, tenant: Tenant, base_url: str) -> dict[str, Any]:
    resources = []
    for resource_type, search in _search_params(tenant).items():
        entry: dict[str, Any] = {
            "type": resource_type,
            "documentation": _PROFILES[resource_type],
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            "versioning": "versioned",
            "readHistory": False,
            "updateCreate": False,
            "conditionalRead": "not-match",
            "searchParam": [
                {"name": p.name, "type": p.type, "documentation": p.documentation}
                for p in search.values()
            ],
        }
        operations = RESOURCE_OPERATIONS.get(resource_type)
        if operations:
            entry["operation"] = list(operations)
        resources.append(entry)
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": STATEMENT_DATE,
        "publisher": tenant.name.strip() or tenant.slug,
        "kind": "instance",
        "instantiates": [BULK_DATA_CAPABILITY],
        "software": {"name": "Verdant"},
        "implementation": {
            "description": f"{tenant.name.strip() or tenant.slug} — FHIR R4 API",
            "url": base_url,
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "server",
                "documentation": (
                    "Read-only. Authenticate with a bearer access token of this organisation "
                    "(POST /api/v1/auth/token/ on this host). Searches page with _count and the "
                    "Bundle's next link; Prefer: handling=strict makes an unknown parameter a 400."
                ),
                "security": {
                    "cors": False,
                    "description": "Bearer access tokens of the organisation (15 minutes; refresh "
                    "with /api/v1/auth/token/refresh/). No SMART on FHIR OAuth endpoints.",
                },
                "resource": resources,
                "operation": list(SYSTEM_OPERATIONS),
            }
        ],
    }
