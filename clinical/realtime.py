"""The ``appointments`` subscription (issue 18, item 4): a facility's board for a range of days
in the facility's time zone, registered with ``realtime.registry`` (platform code imports no
domain app). docs/realtime.md describes the events.

A subscription remembers the appointments on its board (id -> start, status; loaded once when it
opens), so an event can tell "created", "rescheduled" (into or within the range) and "moved out"
(to another day or facility) apart without the change log carrying previous values, and a row
moved to a facility the subscriber may not see is announced by id only. The appointment is the
REST API's own representation (``AppointmentOutput``: no patient phone number for any role).
It also remembers the row's own shown columns, so a write touching only bookkeeping columns
(``reminder_sent_at``, ``reminder_due_at``) makes no event (issue 18, item 5).

The ``reminders`` subscription (tenant admins only) sends reminder delivery states, the REST
API's ``ReminderOutput`` (no phone number, no message body), from the change log entries
``realtime`` migration 0002 adds for ``clinical_remindermessage``.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.utils.dateparse import parse_date

from accounts.roles import Role
from apikit.policy import permissions_for
from clinical.api.reminders import ReminderOutput
from clinical.api.serializers import AppointmentOutput
from clinical.models import Appointment, AppointmentStatus, Facility, ReminderMessage
from clinical.selectors import facility_list
from realtime.handshake import CLOSE_NOT_FOUND, RefusedError
from realtime.registry import Entry, SubscriptionError, SubscriptionKind, register_kind

# The widest range one subscription may cover (a month's board).
MAX_SPAN_DAYS = 31
# A batch changing more of a board's appointments than this becomes one "reload" event.
RELOAD_THRESHOLD = 200

STATUS_EVENTS = {
    AppointmentStatus.CHECKED_IN: "appointment.checked_in",
    AppointmentStatus.COMPLETED: "appointment.completed",
    AppointmentStatus.CANCELLED: "appointment.cancelled",
    AppointmentStatus.NO_SHOW: "appointment.no_show",
}


# The appointment's own columns its representation shows (patient, clinician and facility
# names live in other rows, whose changes make no appointment entry). Two equal tuples: nothing
# the board shows changed, so the entry was bookkeeping (reminder_sent_at, ...) and makes no event.
SHOWN_COLUMNS = (
    "starts_at",
    "ends_at",
    "status",
    "reason",
    "cancellation_reason",
    "checked_in_at",
    "completed_at",
    "cancelled_at",
    "version",
    "updated_at",
    "created_at",
    "clinician_id",
    "patient_id",
    "facility_id",
    "archived_at",
)


class Known(NamedTuple):
    starts_at: dt.datetime
    status: str
    shown: tuple[Any, ...]


@dataclass
class Board:
    facility_id: str
    starts: dt.datetime
    ends: dt.datetime
    # Appointment id -> what the board holds of it.
    known: dict[str, Known] = field(default_factory=dict)


@dataclass(frozen=True)
class Row:
    facility_id: str
    starts_at: dt.datetime
    status: str
    version: int
    archived: bool
    shown: dict[str, dict[str, Any]]
    columns: tuple[Any, ...]


def _params(params: dict[str, Any]) -> tuple[uuid.UUID, dt.date, dt.date]:
    try:
        facility = uuid.UUID(str(params.get("facility")))
    except ValueError:
        raise SubscriptionError("invalid", "'facility' must be a facility id.") from None
    first = parse_date(str(params.get("from"))) if params.get("from") else None
    last = parse_date(str(params.get("to"))) if params.get("to") else first
    if first is None or last is None:
        raise SubscriptionError("invalid", "'from' (and optional 'to') must be YYYY-MM-DD dates.")
    if last < first or (last - first).days >= MAX_SPAN_DAYS:
        raise SubscriptionError(
            "invalid", f"'to' must be on or after 'from', at most {MAX_SPAN_DAYS} days in all."
        )
    return facility, first, last


def _board_facility(*, user: Any, params: dict[str, Any]) -> tuple[Facility, dt.date, dt.date]:
    """The board's facility, if ``user`` may see its appointments (4404 otherwise), and days."""
    facility_id, first, last = _params(params)
    if "clinical.view_appointment" not in permissions_for(str(user.role)):
        raise RefusedError(CLOSE_NOT_FOUND, "no such facility")
    facility = facility_list(user=user).filter(pk=facility_id, archived_at__isnull=True).first()
    if facility is None:
        raise RefusedError(CLOSE_NOT_FOUND, "no such facility")
    return facility, first, last


def board_recheck(*, user: Any, identity: Any, params: dict[str, Any]) -> None:
    """A re-check keeps the board's memory of its rows: the access alone, one query."""
    _board_facility(user=user, params=params)


def board_open(*, user: Any, identity: Any, params: dict[str, Any]) -> Board:
    facility, first, last = _board_facility(user=user, params=params)
    zone = zoneinfo.ZoneInfo(facility.timezone)
    starts = dt.datetime.combine(first, dt.time(), tzinfo=zone)
    ends = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=zone)
    board = Board(facility_id=str(facility.pk), starts=starts, ends=ends)
    rows = Appointment.objects.filter(
        facility=facility, starts_at__gte=starts, starts_at__lt=ends, archived_at__isnull=True
    ).values_list("pk", *SHOWN_COLUMNS)
    board.known = {
        str(pk): Known(starts_at=columns[0], status=columns[2], shown=tuple(columns))
        for pk, *columns in rows
    }
    return board


def board_load(*, entries: list[Entry], roles: frozenset[str]) -> dict[str, Row]:
    """One query for the batch's appointments, rendered once per subscribed role."""
    ids = {entry.row_id for entry in entries}
    appointments = Appointment.objects.select_related("facility", "clinician", "patient").filter(
        pk__in=ids
    )
    rows: dict[str, Row] = {}
    for appointment in appointments:
        shown = AppointmentOutput(appointment).data
        rows[str(appointment.pk)] = Row(
            facility_id=str(appointment.facility_id),
            starts_at=appointment.starts_at,
            status=appointment.status,
            version=appointment.version,
            archived=appointment.archived_at is not None,
            # The same representation for every role today (it carries no restricted field);
            # keyed by role so a projection added to AppointmentOutput reaches events too.
            shown={role: dict(shown) for role in roles},
            columns=tuple(getattr(appointment, column) for column in SHOWN_COLUMNS),
        )
    return rows


def _event(row: Row, previous: Known | None) -> str:
    """The event for ``row``, on the board now; ``previous``: what the board held of it."""
    if row.status in STATUS_EVENTS and (previous is None or row.status != previous.status):
        return STATUS_EVENTS[AppointmentStatus(row.status)]
    if previous is None:
        return "appointment.created" if row.version == 1 else "appointment.rescheduled"
    if row.starts_at != previous.starts_at:
        return "appointment.rescheduled"
    return "appointment.updated"


def board_relevant(board: Board, entry: Entry) -> bool:
    """The entries ``board_match`` looks at: those naming the board's facility (before or after
    the change), so a resume loads this facility's rows only."""
    return board.facility_id in entry.scope_ids


def _last_per_row(entries: Iterable[Entry]) -> dict[str, Entry]:
    """Each row's last entry, in the order of those last entries: a row changed several times in
    a batch makes one event, at its last change's position."""
    last_entry: dict[str, Entry] = {}
    for entry in entries:
        last_entry.pop(entry.row_id, None)
        last_entry[entry.row_id] = entry
    return last_entry


def _or_reload(
    events: list[tuple[str, dict[str, Any]]], *, reload: str
) -> list[tuple[str, dict[str, Any]]]:
    """``events``, or past ``RELOAD_THRESHOLD`` one ``reload`` event at the last one's id."""
    if len(events) > RELOAD_THRESHOLD:
        return [(events[-1][0], {"event": reload})]
    return events


def board_match(
    board: Board, batch: dict[str, Row], entries: list[Entry], *, role: str, resumed: bool
) -> list[tuple[str, dict[str, Any]]]:
    last_entry = _last_per_row(entry for entry in entries if board_relevant(board, entry))
    events: list[tuple[str, dict[str, Any]]] = []
    for row_id, entry in last_entry.items():
        row = batch.get(row_id)
        on_board = (
            row is not None
            and not row.archived
            and row.facility_id == board.facility_id
            and board.starts <= row.starts_at < board.ends
        )
        # A resume cannot know what the client's board held: every changed row counts as new.
        previous = None if resumed else board.known.get(row_id)
        if on_board and row is not None:
            if previous is not None and previous.shown == row.columns:
                continue  # bookkeeping only: the board shows nothing new
            events.append(
                (
                    entry.event_id,
                    {"event": _event(row, previous), "appointment": row.shown[role]},
                )
            )
            board.known[row_id] = Known(
                starts_at=row.starts_at, status=row.status, shown=row.columns
            )
        elif previous is not None or resumed:
            removed = row is None or row.archived
            name = "appointment.removed" if removed else "appointment.moved_out"
            # By id only: it may now be at a facility this subscriber may not see.
            events.append((entry.event_id, {"event": name, "appointment": {"id": row_id}}))
            board.known.pop(row_id, None)
    return _or_reload(events, reload="appointments.reload")


register_kind(
    SubscriptionKind(
        name="appointments",
        tables=frozenset({"appointments"}),
        open=board_open,
        load=board_load,
        match=board_match,
        relevant=board_relevant,
        recheck=board_recheck,
    )
)


# --- reminders --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReminderFeed:
    """A tenant admin's reminder delivery states (the whole tenant: an admin sees every
    facility)."""

    role: str


def reminders_open(*, user: Any, identity: Any, params: dict[str, Any]) -> ReminderFeed:
    # Not an admin: the same answer as an unknown kind (4404), as the REST API's 404.
    if not (user.is_active and str(user.role) == Role.TENANT_ADMIN):
        raise RefusedError(CLOSE_NOT_FOUND, "no such subscription")
    return ReminderFeed(role=str(user.role))


def reminders_load(*, entries: list[Entry], roles: frozenset[str]) -> dict[str, dict[str, Any]]:
    """One query for the batch's reminders, in the REST API's representation (no phone number,
    no message body)."""
    ids = {entry.row_id for entry in entries}
    reminders = ReminderMessage.objects.select_related("appointment").filter(pk__in=ids)
    return {str(reminder.pk): dict(ReminderOutput(reminder).data) for reminder in reminders}


def reminders_match(
    feed: ReminderFeed,
    batch: dict[str, dict[str, Any]],
    entries: list[Entry],
    *,
    role: str,
    resumed: bool,
) -> list[tuple[str, dict[str, Any]]]:
    events: list[tuple[str, dict[str, Any]]] = []
    for row_id, entry in _last_per_row(entries).items():
        reminder = batch.get(row_id)
        if reminder is None:
            events.append(
                (entry.event_id, {"event": "reminder.removed", "reminder": {"id": row_id}})
            )
        else:
            events.append(
                (entry.event_id, {"event": f"reminder.{reminder['state']}", "reminder": reminder})
            )
    return _or_reload(events, reload="reminders.reload")


register_kind(
    SubscriptionKind(
        name="reminders",
        tables=frozenset({"reminders"}),
        open=reminders_open,
        load=reminders_load,
        match=reminders_match,
    )
)
