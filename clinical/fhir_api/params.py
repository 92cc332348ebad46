"""The search parameters of each resource type (docs/fhir.md lists them; the CapabilityStatement
is built from these). ``phone`` is a Patient parameter only for roles whose projection shows the
phone (clinical.projection): for the others it does not exist — ignored, or a 400 under
``Prefer: handling=strict`` — so a number can never find a patient for them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import phonenumbers
from django.conf import settings
from django.db.models import Q, QuerySet

from clinical.fhir import resources as fhir
from clinical.fhir_api.search import (
    STRING_MODIFIERS,
    SearchParam,
    Token,
    date_filter,
    id_filter,
    reference_filter,
    reference_ids,
    string_filter,
    token_filter,
    uuids,
)
from clinical.models import Sex
from clinical.projection import PHONE_ROLES, PatientProjection
from tenants.models import Tenant

GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"
APPOINTMENT_STATUS_SYSTEM = "http://hl7.org/fhir/appointmentstatus"
_STATUS_BY_CODE = {code: status for status, code in fhir.APPOINTMENT_STATUS.items()}
_SEX_BY_CODE = {str(sex.value): sex for sex in Sex}

Params = Mapping[str, SearchParam]


def _system_ok(token: Token, *systems: str) -> bool:
    """A token's system (when it names one) must be the element's own."""
    return token.system is None or token.system in systems


def _id() -> SearchParam:
    return SearchParam("_id", "token", id_filter(), "The resource id (a UUID).")


def _last_updated() -> SearchParam:
    return SearchParam(
        "_lastUpdated",
        "date",
        date_filter("updated_at", name="_lastUpdated"),
        "When the resource last changed.",
    )


def _phone_numbers(code: str) -> list[str]:
    """``code`` as E.164 (without a country code: in CLINICAL_DEFAULT_PHONE_REGION)."""
    region = getattr(settings, "CLINICAL_DEFAULT_PHONE_REGION", None)
    try:
        number = phonenumbers.parse(code, region)
    except phonenumbers.NumberParseException:
        return []
    return [phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)]


def patient_params(*, tenant: Tenant, projection: PatientProjection) -> Params:
    system = fhir.mrn_system(tenant)
    org_id = fhir.organization_id(tenant)

    def identifier(token: Token) -> Q | None:
        return Q(mrn=token.code) if _system_ok(token, system) else None

    def gender(token: Token) -> Q | None:
        sex = _SEX_BY_CODE.get(token.code)
        return Q(sex=sex) if sex and _system_ok(token, GENDER_SYSTEM) else None

    def phone(token: Token) -> Q | None:
        if not _system_ok(token, "phone"):
            return None
        numbers = _phone_numbers(token.code)
        return Q(phone__in=numbers) if numbers else None

    def organization(
        queryset: QuerySet[Any], values: list[str], modifier: str | None
    ) -> QuerySet[Any]:
        # Every patient of the tenant is managed by its one Organization.
        ids = reference_ids(values, resource_type=fhir.ORGANIZATION)
        return queryset if org_id in ids else queryset.none()

    params = [
        _id(),
        SearchParam(
            "identifier",
            "token",
            token_filter(identifier),
            f"The MRN ([{system}|]<mrn>).",
        ),
        SearchParam(
            "name",
            "string",
            string_filter("given_name", "family_name"),
            "Given or family name (starts with; :exact, :contains).",
            STRING_MODIFIERS,
        ),
        SearchParam(
            "family",
            "string",
            string_filter("family_name"),
            "Family name (starts with; :exact, :contains).",
            STRING_MODIFIERS,
        ),
        SearchParam(
            "given",
            "string",
            string_filter("given_name"),
            "Given name (starts with; :exact, :contains).",
            STRING_MODIFIERS,
        ),
        SearchParam(
            "birthdate",
            "date",
            date_filter("birth_date", name="birthdate", date_only=True),
            "Birth date (eq, ne, gt, lt, ge, le; YYYY, YYYY-MM or YYYY-MM-DD).",
        ),
        SearchParam("gender", "token", token_filter(gender), "male | female | other | unknown."),
        SearchParam(
            "general-practitioner",
            "reference",
            reference_filter("assigned_clinician_id", fhir.PRACTITIONER),
            "The assigned clinician (Practitioner/<id>).",
        ),
        SearchParam(
            "organization",
            "reference",
            organization,
            "The managing Organization (the tenant: Organization/<slug>).",
        ),
        _last_updated(),
    ]
    if projection.shows("phone"):
        params.append(
            SearchParam(
                "phone",
                "token",
                token_filter(phone),
                "The phone number, in any notation (matched as E.164); only for roles that "
                "may see phone numbers (" + ", ".join(sorted(PHONE_ROLES)) + ").",
            )
        )
    return {param.name: param for param in params}


def appointment_params() -> Params:
    def status(token: Token) -> Q | None:
        found = _STATUS_BY_CODE.get(token.code)
        return Q(status=found) if found and _system_ok(token, APPOINTMENT_STATUS_SYSTEM) else None

    def actor(queryset: QuerySet[Any], values: list[str], modifier: str | None) -> QuerySet[Any]:
        condition = Q(pk__in=[])
        for column, kind in (
            ("patient_id", fhir.PATIENT),
            ("clinician_id", fhir.PRACTITIONER),
            ("facility_id", fhir.LOCATION),
        ):
            ids = uuids(reference_ids(values, resource_type=kind))
            if ids:
                condition |= Q(**{f"{column}__in": ids})
        return queryset.filter(condition)

    params = [
        _id(),
        SearchParam(
            "date",
            "date",
            date_filter("starts_at", name="date"),
            "The start (eq, ne, gt, lt, ge, le; a date without a time is a UTC day).",
        ),
        SearchParam(
            "patient", "reference", reference_filter("patient_id", fhir.PATIENT), "Patient/<id>."
        ),
        SearchParam(
            "practitioner",
            "reference",
            reference_filter("clinician_id", fhir.PRACTITIONER),
            "The clinician (Practitioner/<id>).",
        ),
        SearchParam(
            "actor", "reference", actor, "Any participant: Patient, Practitioner or Location."
        ),
        SearchParam(
            "location",
            "reference",
            reference_filter("facility_id", fhir.LOCATION),
            "The facility (Location/<id>).",
        ),
        SearchParam(
            "status",
            "token",
            token_filter(status),
            "booked | checked-in | fulfilled | cancelled | noshow.",
        ),
        _last_updated(),
    ]
    return {param.name: param for param in params}


def practitioner_params() -> Params:
    def identifier(token: Token) -> Q | None:
        if not _system_ok(token, fhir.URI_SYSTEM) or not token.code.startswith("urn:uuid:"):
            return None
        ids = uuids([token.code.removeprefix("urn:uuid:")])
        return Q(pk__in=ids) if ids else None

    params = [
        _id(),
        SearchParam(
            "name",
            "string",
            string_filter("full_name", word_start=True),
            "Any word of the name starts with this (:exact, :contains on the whole name).",
            STRING_MODIFIERS,
        ),
        SearchParam(
            "identifier",
            "token",
            token_filter(identifier),
            f"{fhir.URI_SYSTEM}|urn:uuid:<id>.",
        ),
        _last_updated(),
    ]
    return {param.name: param for param in params}


def location_params(*, tenant: Tenant) -> Params:
    system = fhir.facility_code_system(tenant)

    def identifier(token: Token) -> Q | None:
        return Q(code=token.code) if _system_ok(token, system) else None

    params = [
        _id(),
        SearchParam(
            "name",
            "string",
            string_filter("name", word_start=True),
            "Any word of the name starts with this (:exact, :contains on the whole name).",
            STRING_MODIFIERS,
        ),
        SearchParam(
            "identifier",
            "token",
            token_filter(identifier),
            f"The facility code ([{system}|]<code>).",
        ),
        _last_updated(),
    ]
    return {param.name: param for param in params}


def organization_params() -> Params:
    def by_id(queryset: QuerySet[Any], values: list[str], modifier: str | None) -> QuerySet[Any]:
        return queryset.filter(slug__in=values)

    return {
        "_id": SearchParam("_id", "token", by_id, "The Organization id (the tenant's slug)."),
        "name": SearchParam(
            "name",
            "string",
            string_filter("name", word_start=True),
            "Any word of the name starts with this.",
            STRING_MODIFIERS,
        ),
    }
