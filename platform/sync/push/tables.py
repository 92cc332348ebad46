"""What may be pushed, per synced table: the client-writable columns, the container a row belongs
to (farm or facility, for the scope check), the conflict policy, the cross-field rules, and how
rows of the table are loaded when another table references them.

Server-managed columns (``version``, ``created_by``, ``recorded_by``, ``visit_count``, audit
timestamps, computed area and bounding box, ...) are not listed, so input naming them is ignored.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from django.db.models import Model

from accounts.models import User
from accounts.roles import Role
from apikit.policy import AccessLevel
from clinical.models import Appointment, AppointmentStatus, Facility, Patient, Sex
from farms.models import Crop, Farm, Field, Harvest, Observation, Planting
from sync.push.columns import Column, FieldError, choices_of
from sync.push.context import FAILED, PushContext
from sync.push.rows import Draft

DEPENDENCY_MISSING = "No such {table} row (or not visible to you)."
DEPENDENCY_FAILED = "The referenced {table} row in this batch was not written."
DEPENDENCY_ARCHIVED = "The referenced {table} row was deleted."


class Policy(StrEnum):
    REJECT = "reject"
    FIELD_MERGE = "field_merge"
    APPEND_ONLY = "append_only"
    SERVER_WINS = "server_wins"


class RowInvalidError(Exception):
    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors)
        self.errors = errors


@dataclass(frozen=True)
class Derived:
    """A server-computed column written with the row (area from the boundary, ...)."""

    name: str
    sql_type: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    model: type[Model]
    columns: tuple[Column, ...]
    policy: Policy
    container_model: type[Model]
    # Level needed on the container to create / change / delete rows of this table.
    write_level: AccessLevel
    # The row's container id from its (full) values; refs already checked.
    container_of: Callable[[dict[str, Any], PushContext], Any]
    # Cross-field rules and normalisation; may set derived columns in ``values``.
    clean: Callable[[Draft, PushContext], None] | None = None
    derived: tuple[Derived, ...] = ()
    # Info other tables need about a row of this table (same keys as ``ref_sql`` returns).
    ref_info: Callable[[dict[str, Any], PushContext], dict[str, Any]] | None = None
    # Columns stamped with the acting user on insert (besides created_by / updated_by).
    recorded_by: bool = False
    # SELECT list (alias t) of the reference loader; it must return id and archived_at.
    ref_sql: str = "t.id, t.archived_at"
    # Extra lookups before rows are decided (one query each), e.g. MRNs already taken.
    preload: Callable[[list[Any], PushContext], None] | None = None

    @property
    def table(self) -> str:
        return str(self.model._meta.db_table)

    @property
    def by_name(self) -> dict[str, Column]:
        return _BY_NAME[self.name]

    def perm(self, action: str) -> str:
        return f"{self.model._meta.app_label}.{action}_{self.model._meta.model_name}"


_BY_NAME: dict[str, dict[str, Column]] = {}


def _errors(*errors: FieldError) -> RowInvalidError:
    return RowInvalidError(list(errors))


# --- references --------------------------------------------------------------------------------


def check_ref(
    ctx: PushContext, *, table: str, column: str, value: Any, label: str | None = None
) -> dict[str, Any]:
    """The referenced row's info, or a field error naming why it cannot be used."""
    info = ctx.ref(table, value)
    name = label or table
    if info is None:
        raise FieldError(column, DEPENDENCY_MISSING.format(table=name), "dependency_missing")
    if info is FAILED:
        raise FieldError(column, DEPENDENCY_FAILED.format(table=name), "dependency_failed")
    if info.get("archived_at") is not None:
        raise FieldError(column, DEPENDENCY_ARCHIVED.format(table=name), "dependency_missing")
    return info


# --- farms -------------------------------------------------------------------------------------

TIMEZONE_UNKNOWN = "Unknown time zone {value!r}; use an IANA name such as Africa/Nairobi."
LOCATION_INCOMPLETE = "Give both longitude and latitude, or neither."


def _valid_timezone(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _farm_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    if not _valid_timezone(values["timezone"]):
        raise _errors(FieldError("timezone", TIMEZONE_UNKNOWN.format(value=values["timezone"])))
    if (values["longitude"] is None) != (values["latitude"] is None):
        raise _errors(FieldError("longitude", LOCATION_INCOMPLETE))


FARMS = TableSpec(
    name="farms",
    model=Farm,
    columns=(
        Column("name", "text", required=True, max_length=200),
        Column("region", "text", default="", max_length=200),
        Column("longitude", "float", nullable=True, low=-180, high=180),
        Column("latitude", "float", nullable=True, low=-90, high=90),
        Column("timezone", "text", default="UTC", max_length=64),
    ),
    policy=Policy.FIELD_MERGE,
    container_model=Farm,
    write_level=AccessLevel.MANAGE,
    container_of=lambda values, ctx: values["id"],
    clean=_farm_clean,
    ref_info=lambda values, ctx: {"id": values["id"], "archived_at": None},
)


# --- fields ------------------------------------------------------------------------------------


def _field_clean(draft: Draft, ctx: PushContext) -> None:
    from farms.geometry import BoundaryError, boundary_parse

    values = draft.values
    check_ref(ctx, table="farms", column="farm_id", value=values["farm_id"], label="farm")
    try:
        parsed = boundary_parse(values["boundary"])
    except BoundaryError as exc:
        raise _errors(FieldError("boundary", str(exc))) from None
    values.update(
        boundary=parsed.geojson,
        area_ha=parsed.area_ha,
        bbox_min_lon=parsed.min_lon,
        bbox_min_lat=parsed.min_lat,
        bbox_max_lon=parsed.max_lon,
        bbox_max_lat=parsed.max_lat,
    )


FIELDS = TableSpec(
    name="fields",
    model=Field,
    columns=(
        Column("farm_id", "uuid", required=True, ref="farms", aliases=("farm",)),
        Column("name", "text", required=True, max_length=200),
        Column("boundary", "json", required=True),
    ),
    policy=Policy.FIELD_MERGE,
    container_model=Farm,
    write_level=AccessLevel.MANAGE,
    container_of=lambda values, ctx: values["farm_id"],
    clean=_field_clean,
    derived=tuple(
        Derived(name, "float8")
        for name in ("area_ha", "bbox_min_lon", "bbox_min_lat", "bbox_max_lon", "bbox_max_lat")
    ),
    ref_info=lambda values, ctx: {"farm_id": values["farm_id"], "archived_at": None},
    ref_sql="t.id, t.archived_at, t.farm_id",
)


# --- plantings ---------------------------------------------------------------------------------

DATES_ORDER = "The expected harvest date cannot be before the planting date."


def _planting_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    errors = []
    for column, table, label in (("field_id", "fields", "field"), ("crop_id", "crops", "crop")):
        try:
            check_ref(ctx, table=table, column=column, value=values[column], label=label)
        except FieldError as exc:
            errors.append(exc)
    expected = values["expected_harvest_on"]
    if expected is not None and values["planted_on"] > expected:
        errors.append(FieldError("expected_harvest_on", DATES_ORDER))
    if errors:
        raise RowInvalidError(errors)


def _planting_info(values: dict[str, Any], ctx: PushContext) -> dict[str, Any]:
    field_info = ctx.ref("fields", values["field_id"]) or {}
    return {
        "field_id": values["field_id"],
        "farm_id": field_info.get("farm_id"),
        "status": values["status"],
        "planted_on": values["planted_on"],
        "archived_at": None,
    }


def _farm_of_field(values: dict[str, Any], ctx: PushContext) -> Any:
    return (ctx.ref("fields", values["field_id"]) or {}).get("farm_id")


PLANTINGS = TableSpec(
    name="plantings",
    model=Planting,
    columns=(
        Column("field_id", "uuid", required=True, ref="fields", aliases=("field",)),
        Column("crop_id", "uuid", required=True, ref="crops", aliases=("crop",)),
        Column("season", "text", required=True, max_length=60),
        Column("planted_on", "date", required=True),
        Column("expected_harvest_on", "date", nullable=True),
        Column(
            "status",
            "text",
            default=Planting.Status.PLANNED.value,
            choices=choices_of(Planting.Status),
        ),
    ),
    policy=Policy.FIELD_MERGE,
    container_model=Farm,
    write_level=AccessLevel.MANAGE,
    container_of=_farm_of_field,
    clean=_planting_clean,
    ref_info=_planting_info,
    ref_sql=(
        "t.id, t.archived_at, t.field_id, t.status, t.planted_on, "
        "(SELECT f.farm_id FROM farms_field f WHERE f.id = t.field_id) AS farm_id"
    ),
)


CROPS = TableSpec(
    name="crops",
    model=Crop,
    columns=(
        Column("name", "text", required=True, max_length=120),
        Column("variety", "text", default="", max_length=120),
        Column("category", "text", default="other", choices=choices_of(Crop.Category)),
    ),
    policy=Policy.SERVER_WINS,
    container_model=Farm,
    write_level=AccessLevel.MANAGE,
    container_of=lambda values, ctx: None,
)


# --- observations and harvests (append-only) ---------------------------------------------------

# Device clocks drift; a reading a few minutes "in the future" is still accepted.
CLOCK_SKEW = dt.timedelta(minutes=5)
PLANTING_NOT_IN_FIELD = "This planting is not on the given field."
FIELD_OR_PLANTING = "Give the field, the planting, or both."
OBSERVED_IN_FUTURE = "The observation time is in the future."
CORRECTION_OTHER_FIELD = "A correction must be on the same field as the row it supersedes."
CORRECTION_OTHER_PLANTING = "A correction must be for the same planting as the row it supersedes."
ALREADY_SUPERSEDED = "This row already has a correction; correct the newest row instead."
HARVEST_STATUS = (
    "Harvests can only be recorded for a growing or harvested planting (it is {status})."
)
HARVEST_BEFORE_PLANTING = "The harvest date cannot be before the planting date ({planted_on})."
HARVEST_IN_FUTURE = "The harvest date is in the future."
QUANTITY_TOO_LARGE = "At most 11 digits before the decimal point."


def _supersedes(draft: Draft, ctx: PushContext, *, table: str, same: str, message: str) -> None:
    values = draft.values
    target_id = values["supersedes_id"]
    if target_id is None:
        return
    existing = draft.existing
    if existing is not None and existing.get("supersedes_id") == target_id:
        return  # an update of the correction itself
    info = check_ref(ctx, table=table, column="supersedes_id", value=target_id, label=table)
    if info.get(same) != values[same]:
        raise _errors(FieldError("supersedes_id", message))
    if info.get("corrected"):
        raise _errors(FieldError("supersedes_id", ALREADY_SUPERSEDED, "already_superseded"))


def _observation_clean(draft: Draft, ctx: PushContext) -> None:
    from farms.units import UnitError, observation_value_normalise

    values = draft.values
    planting = None
    if values["planting_id"] is not None:
        planting = check_ref(
            ctx,
            table="plantings",
            column="planting_id",
            value=values["planting_id"],
            label="planting",
        )
        if values["field_id"] is None:
            values["field_id"] = planting["field_id"]
    if values["field_id"] is None:
        raise _errors(FieldError("field_id", FIELD_OR_PLANTING, "required"))
    check_ref(ctx, table="fields", column="field_id", value=values["field_id"], label="field")
    if planting is not None and planting["field_id"] != values["field_id"]:
        raise _errors(FieldError("planting_id", PLANTING_NOT_IN_FIELD))
    if values["observed_at"] > ctx.now + CLOCK_SKEW:
        raise _errors(FieldError("observed_at", OBSERVED_IN_FUTURE))
    try:
        values["value"], values["unit"] = observation_value_normalise(
            kind=values["kind"], value=values["value"], unit=values["unit"], text=values["text"]
        )
    except UnitError as exc:
        raise _errors(FieldError(exc.field, exc.message)) from None
    # Which device recorded the row comes from the token's ``did``, never from the body.
    if draft.existing is None:
        values["device_id"] = str(ctx.device_id) if ctx.device_id is not None else ""
    _supersedes(draft, ctx, table="observations", same="field_id", message=CORRECTION_OTHER_FIELD)


OBSERVATIONS = TableSpec(
    name="observations",
    model=Observation,
    columns=(
        Column("field_id", "uuid", nullable=True, ref="fields", aliases=("field",)),
        Column("planting_id", "uuid", nullable=True, ref="plantings", aliases=("planting",)),
        Column("observed_at", "datetime", required=True),
        Column("kind", "text", required=True, choices=choices_of(Observation.Kind)),
        Column("value", "float", nullable=True),
        Column("unit", "text", default="", max_length=16),
        Column("text", "text", default="", max_length=5000),
        Column("supersedes_id", "uuid", nullable=True, ref="observations", aliases=("supersedes",)),
    ),
    policy=Policy.APPEND_ONLY,
    container_model=Farm,
    write_level=AccessLevel.VIEW,
    container_of=_farm_of_field,
    clean=_observation_clean,
    derived=(Derived("device_id", "text"),),
    recorded_by=True,
    ref_info=lambda values, ctx: {
        "field_id": values["field_id"],
        "corrected": False,
        "archived_at": None,
    },
    ref_sql=(
        "t.id, t.archived_at, t.field_id, EXISTS (SELECT 1 FROM farms_observation c "
        "WHERE c.supersedes_id = t.id AND c.archived_at IS NULL) AS corrected"
    ),
)


def _harvest_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    planting = check_ref(
        ctx, table="plantings", column="planting_id", value=values["planting_id"], label="planting"
    )
    errors = []
    if planting["status"] not in (Planting.Status.GROWING, Planting.Status.HARVESTED):
        errors.append(FieldError("planting_id", HARVEST_STATUS.format(status=planting["status"])))
    if values["harvested_on"] < planting["planted_on"]:
        errors.append(
            FieldError(
                "harvested_on", HARVEST_BEFORE_PLANTING.format(planted_on=planting["planted_on"])
            )
        )
    if values["harvested_on"] > ctx.now.date() + dt.timedelta(days=1):
        errors.append(FieldError("harvested_on", HARVEST_IN_FUTURE))
    quantity: Decimal = values["quantity_kg"].quantize(Decimal("0.001"))
    if quantity.adjusted() >= 11:
        errors.append(FieldError("quantity_kg", QUANTITY_TOO_LARGE))
    values["quantity_kg"] = quantity
    if errors:
        raise RowInvalidError(errors)
    _supersedes(draft, ctx, table="harvests", same="planting_id", message=CORRECTION_OTHER_PLANTING)


def _farm_of_planting(values: dict[str, Any], ctx: PushContext) -> Any:
    return (ctx.ref("plantings", values["planting_id"]) or {}).get("farm_id")


HARVESTS = TableSpec(
    name="harvests",
    model=Harvest,
    columns=(
        Column("planting_id", "uuid", required=True, ref="plantings", aliases=("planting",)),
        Column("harvested_on", "date", required=True),
        Column("quantity_kg", "decimal", required=True, low=0, high=99_999_999_999.999),
        Column("grade", "text", default="", max_length=40),
        Column("supersedes_id", "uuid", nullable=True, ref="harvests", aliases=("supersedes",)),
    ),
    policy=Policy.APPEND_ONLY,
    container_model=Farm,
    write_level=AccessLevel.VIEW,
    container_of=_farm_of_planting,
    clean=_harvest_clean,
    recorded_by=True,
    ref_info=lambda values, ctx: {
        "planting_id": values["planting_id"],
        "corrected": False,
        "archived_at": None,
    },
    ref_sql=(
        "t.id, t.archived_at, t.planting_id, EXISTS (SELECT 1 FROM farms_harvest c "
        "WHERE c.supersedes_id = t.id AND c.archived_at IS NULL) AS corrected"
    ),
)


# --- clinical ----------------------------------------------------------------------------------

MRN_PATTERN = re.compile(r"^[A-Za-z0-9./_-]+$")
MRN_INVALID = "Letters, digits and . / _ - only."
MRN_TAKEN = "A patient with this MRN already exists."
BIRTH_IN_FUTURE = "The birth date cannot be in the future."
SMS_NEEDS_PHONE = "SMS consent needs a phone number."
CLINICIAN_INVALID = "No active clinician with this id."
APPOINTMENT_ENDS_BEFORE_START = "ends_at must be after starts_at."
APPOINTMENT_TOO_LONG = "An appointment may last at most {hours} hours."
APPOINTMENT_MAX_HOURS = 12
APPOINTMENT_NOT_EDITABLE = "Only scheduled appointments can be changed (this one is {status})."
STATUS_BY_PUSH = "A push may only cancel a scheduled appointment; use the API for {status}."
FACILITY_OTHER = "The appointment's facility must be the patient's facility."


def _clinician(ctx: PushContext, column: str, value: Any) -> None:
    info = ctx.ref("users", value)
    if info is None or not info.get("is_active") or info.get("role") != Role.CLINICIAN:
        raise FieldError(column, CLINICIAN_INVALID, "dependency_missing")


def _patient_clean(draft: Draft, ctx: PushContext) -> None:
    from apikit.rules import RuleError
    from clinical.rules import phone_normalise

    values = draft.values
    errors = []
    try:
        check_ref(
            ctx,
            table="facilities",
            column="facility_id",
            value=values["facility_id"],
            label="facility",
        )
    except FieldError as exc:
        errors.append(exc)
    if not MRN_PATTERN.match(values["mrn"]):
        errors.append(FieldError("mrn", MRN_INVALID))
    else:
        owner = ctx.ref("patient_mrns", values["mrn"])
        if owner is not None and owner["id"] != draft.id:
            errors.append(FieldError("mrn", MRN_TAKEN, "unique"))
    if values["birth_date"] > ctx.now.date():
        errors.append(FieldError("birth_date", BIRTH_IN_FUTURE))
    try:
        values["phone"] = phone_normalise(phone=values["phone"])
    except RuleError as exc:
        errors.append(FieldError("phone", exc.message))
    if values["sms_opt_in"] and not values["phone"]:
        errors.append(FieldError("sms_opt_in", SMS_NEEDS_PHONE))
    if values["assigned_clinician_id"] is not None:
        try:
            _clinician(ctx, "assigned_clinician_id", values["assigned_clinician_id"])
        except FieldError as exc:
            errors.append(exc)
    if errors:
        raise RowInvalidError(errors)
    # Later rows of this batch see this MRN as taken.
    ctx.remember("patient_mrns", values["mrn"], {"id": draft.id})


def _patient_preload(rows: list[Any], ctx: PushContext) -> None:
    mrns = sorted({row.fields["mrn"] for row in rows if isinstance(row.fields.get("mrn"), str)})
    if not mrns:
        return
    found = ctx.fetch(
        f"SELECT id, mrn FROM {Patient._meta.db_table} WHERE mrn = ANY(%s::text[])",  # noqa: S608
        [mrns],
    )
    for item in found:
        ctx.remember("patient_mrns", item["mrn"], {"id": item["id"]})


PATIENTS = TableSpec(
    name="patients",
    model=Patient,
    columns=(
        Column("facility_id", "uuid", required=True, ref="facilities", aliases=("facility",)),
        Column("mrn", "text", required=True, max_length=32),
        Column("given_name", "text", required=True, max_length=100),
        Column("family_name", "text", required=True, max_length=100),
        Column("birth_date", "date", required=True),
        Column("sex", "text", default=Sex.UNKNOWN.value, choices=choices_of(Sex)),
        Column("phone", "text", default="", max_length=40),
        Column("sms_opt_in", "bool", default=False),
        Column(
            "assigned_clinician_id",
            "uuid",
            nullable=True,
            ref="users",
            aliases=("assigned_clinician",),
        ),
    ),
    policy=Policy.REJECT,
    container_model=Facility,
    write_level=AccessLevel.MANAGE,
    container_of=lambda values, ctx: values["facility_id"],
    clean=_patient_clean,
    preload=_patient_preload,
    ref_info=lambda values, ctx: {"facility_id": values["facility_id"], "archived_at": None},
    ref_sql="t.id, t.archived_at, t.facility_id",
)


def _appointment_clean(draft: Draft, ctx: PushContext) -> None:
    values = draft.values
    existing = draft.existing
    patient = check_ref(
        ctx, table="patients", column="patient_id", value=values["patient_id"], label="patient"
    )
    if values["facility_id"] is None:
        values["facility_id"] = patient["facility_id"]
    errors = []
    if values["facility_id"] != patient["facility_id"]:
        errors.append(FieldError("facility_id", FACILITY_OTHER))
    try:
        _clinician(ctx, "clinician_id", values["clinician_id"])
    except FieldError as exc:
        errors.append(exc)
    if values["ends_at"] <= values["starts_at"]:
        errors.append(FieldError("ends_at", APPOINTMENT_ENDS_BEFORE_START))
    elif values["ends_at"] - values["starts_at"] > dt.timedelta(hours=APPOINTMENT_MAX_HOURS):
        errors.append(
            FieldError("ends_at", APPOINTMENT_TOO_LONG.format(hours=APPOINTMENT_MAX_HOURS))
        )
    current = existing["status"] if existing is not None else AppointmentStatus.SCHEDULED
    wanted = values["status"]
    if wanted != current:
        if not (current == AppointmentStatus.SCHEDULED and wanted == AppointmentStatus.CANCELLED):
            errors.append(
                FieldError("status", STATUS_BY_PUSH.format(status=wanted), "invalid_transition")
            )
        else:
            values["cancelled_at"] = ctx.now
    elif existing is not None and current != AppointmentStatus.SCHEDULED:
        moved = [
            name
            for name in ("clinician_id", "starts_at", "ends_at", "patient_id", "facility_id")
            if values[name] != existing[name]
        ]
        if moved:
            errors.append(
                FieldError(
                    moved[0], APPOINTMENT_NOT_EDITABLE.format(status=current), "invalid_transition"
                )
            )
    if errors:
        raise RowInvalidError(errors)
    if existing is not None and "cancelled_at" not in values:
        values["cancelled_at"] = existing.get("cancelled_at")


APPOINTMENTS = TableSpec(
    name="appointments",
    model=Appointment,
    columns=(
        Column("patient_id", "uuid", required=True, ref="patients", aliases=("patient",)),
        Column("clinician_id", "uuid", required=True, ref="users", aliases=("clinician",)),
        Column("facility_id", "uuid", nullable=True, ref="facilities", aliases=("facility",)),
        Column("starts_at", "datetime", required=True),
        Column("ends_at", "datetime", required=True),
        Column(
            "status",
            "text",
            default=AppointmentStatus.SCHEDULED.value,
            choices=choices_of(AppointmentStatus),
        ),
        Column("reason", "text", default="", max_length=500),
        Column("cancellation_reason", "text", default="", max_length=500),
    ),
    policy=Policy.REJECT,
    container_model=Facility,
    write_level=AccessLevel.MANAGE,
    container_of=lambda values, ctx: values["facility_id"],
    clean=_appointment_clean,
    derived=(Derived("cancelled_at", "timestamptz"),),
    ref_sql="t.id, t.archived_at",
)


# Push order: parents before children, so a batch may create a field and its plantings.
TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (FARMS, FIELDS, CROPS, PLANTINGS, OBSERVATIONS, HARVESTS, PATIENTS, APPOINTMENTS)
}
for _spec in TABLES.values():
    _BY_NAME[_spec.name] = {
        **{alias: column for column in _spec.columns for alias in column.aliases},
        **{column.name: column for column in _spec.columns},
    }

# Referenced tables that are not pushed themselves: how to load them.
EXTRA_REFS: dict[str, tuple[type[Model], str]] = {
    "facilities": (Facility, "t.id, t.archived_at"),
    "users": (User, "t.id, NULL::timestamptz AS archived_at, t.role, t.is_active"),
}


def ref_loader(table: str) -> tuple[str, str]:
    """(db table, SELECT list) for loading rows of ``table`` referenced by a pushed row."""
    if table in TABLES:
        spec = TABLES[table]
        return spec.table, spec.ref_sql
    model, select = EXTRA_REFS[table]
    return str(model._meta.db_table), select


def as_uuid(value: Any) -> uuid.UUID | None:
    return value if isinstance(value, uuid.UUID) else None
