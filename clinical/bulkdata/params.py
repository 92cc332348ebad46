"""The kick-off request of a Bulk Data export (IG v2.0.0): its parameters checked and parsed.

Pure functions over the query string and headers, so every refusal is a ``KickoffError`` the view
turns into an OperationOutcome 400 (or 406 for the Accept header).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from clinical.models import BulkExportLevel

# Every type this server exports, in the order the job writes them (referenced before referrer).
EXPORT_TYPES: tuple[str, ...] = (
    "Organization",
    "Location",
    "Practitioner",
    "Patient",
    "Appointment",
)
# A Patient-level export defaults to the Patient compartment; the rest may be asked for by _type.
PATIENT_DEFAULT_TYPES: tuple[str, ...] = ("Patient", "Appointment")
OUTPUT_FORMATS = frozenset({"application/fhir+ndjson", "application/ndjson", "ndjson"})
OUTPUT_FORMAT = "application/fhir+ndjson"
# Parameters of the IG this server does not implement: refused (400) unless the client asks for
# lenient handling, as the IG says, rather than silently exporting something else.
UNSUPPORTED_PARAMS = frozenset(
    {"_elements", "patient", "includeAssociatedData", "_typeFilter", "_until", "organizeOutputBy"}
)
SUPPORTED_PARAMS = frozenset({"_type", "_since", "_outputFormat", "_format"})
ACCEPTED_MEDIA = frozenset({"application/fhir+json", "application/json", "*/*"})

# FHIR instant: a full date-time with seconds and a zone (Z or +hh:mm).
_INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")

PREFER_MISSING = "The kick-off needs the header 'Prefer: respond-async'."
ACCEPT_UNSUPPORTED = "Accept must be application/fhir+json (the status and errors are FHIR JSON)."
FORMAT_UNSUPPORTED = "_outputFormat {value!r} is not supported; use application/fhir+ndjson."
SINCE_INVALID = "_since must be a FHIR instant with a time zone, e.g. 2026-01-31T08:00:00Z."
TYPE_UNKNOWN = "_type names {names}, not exported here; this level exports {allowed}."
TYPE_EMPTY = "_type is empty; name at least one resource type."
PARAM_UNSUPPORTED = "The parameter {name} is not supported by this server."
PARAM_REPEATED = "The parameter {name} is given more than once."


class KickoffError(Exception):
    def __init__(self, detail: str, *, status: int = 400, code: str = "invalid") -> None:
        super().__init__(detail)
        self.detail, self.status, self.code = detail, status, code


@dataclass(frozen=True)
class KickoffRequest:
    level: str
    resource_types: tuple[str, ...]
    since: datetime | None
    output_format: str


def _prefer_tokens(prefer: str) -> set[str]:
    return {part.strip().lower() for part in prefer.replace(";", ",").split(",") if part.strip()}


def _accepts_fhir_json(accept: str) -> bool:
    if not accept.strip():
        return True
    for item in accept.split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media in ACCEPTED_MEDIA:
            return True
    return False


def _single(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise KickoffError(PARAM_REPEATED.format(name=name))
    return values[0]


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    if not _INSTANT.fullmatch(value):
        raise KickoffError(SINCE_INVALID)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise KickoffError(SINCE_INVALID) from exc


def _types(values: Sequence[str] | None, *, level: str, lenient: bool) -> tuple[str, ...]:
    if not values:
        return EXPORT_TYPES if level == BulkExportLevel.SYSTEM else PATIENT_DEFAULT_TYPES
    # The IG allows _type repeated as well as comma-separated.
    names = [name.strip() for value in values for name in value.split(",") if name.strip()]
    if not names:
        raise KickoffError(TYPE_EMPTY)
    unknown = sorted({name for name in names if name not in EXPORT_TYPES})
    if unknown and not lenient:
        raise KickoffError(
            TYPE_UNKNOWN.format(names=", ".join(unknown), allowed=", ".join(EXPORT_TYPES)),
            code="not-supported",
        )
    wanted = [name for name in EXPORT_TYPES if name in names]
    if not wanted:
        raise KickoffError(
            TYPE_UNKNOWN.format(names=", ".join(unknown), allowed=", ".join(EXPORT_TYPES)),
            code="not-supported",
        )
    return tuple(wanted)


def kickoff_parse(
    *, level: str, params: Mapping[str, Sequence[str]], headers: Mapping[str, str]
) -> KickoffRequest:
    """The export a kick-off asks for, or ``KickoffError`` saying what is wrong."""
    if not _accepts_fhir_json(headers.get("Accept", "")):
        raise KickoffError(ACCEPT_UNSUPPORTED, status=406, code="not-supported")
    prefer = _prefer_tokens(headers.get("Prefer", ""))
    if "respond-async" not in prefer:
        raise KickoffError(PREFER_MISSING)
    lenient = "handling=lenient" in prefer
    for name in params:
        if name in SUPPORTED_PARAMS:
            continue
        if name in UNSUPPORTED_PARAMS and not lenient:
            raise KickoffError(PARAM_UNSUPPORTED.format(name=name), code="not-supported")
    output_format = _single(params, "_outputFormat")
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise KickoffError(FORMAT_UNSUPPORTED.format(value=output_format), code="not-supported")
    return KickoffRequest(
        level=level,
        resource_types=_types(params.get("_type"), level=level, lenient=lenient),
        since=_since(_single(params, "_since")),
        output_format=OUTPUT_FORMAT,
    )
