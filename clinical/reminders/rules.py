"""Reminder rules with no I/O: which reminders an appointment gets, quiet hours in the
facility's zone (DST-safe through zoneinfo), and the message text.

The settings' validation is written once, here: ``settings_problems`` (one ``RuleError`` rule
per field, ``SETTINGS_RULES``) is what the admin form and the API's serializer both call, so the
two refuse exactly the same input with the same messages."""

from __future__ import annotations

import logging
import string
import zoneinfo
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from apikit.rules import RuleError
from clinical.models import DEFAULT_REMINDER_TEMPLATE, ReminderSettings

logger = logging.getLogger(__name__)

TEMPLATE_FIELDS = frozenset(
    {
        "patient_given_name",
        "patient_family_name",
        "facility_name",
        "local_date",
        "local_time",
        "kind",
    }
)
KINDS_INVALID = (
    'kinds must be a list of {"kind": "<name>", "minutes_before": <1..43200>} with unique names '
    "and offsets."
)
TEMPLATE_INVALID = "Unknown placeholder {name!r} in the template; use: {choices}."
TEMPLATE_BROKEN = "The template is not a valid format string: {error}."
TEMPLATE_BLANK = "The template cannot be blank."
TEMPLATE_TOO_LONG = "The template may be at most {max} characters long (one SMS message's limit)."
QUIET_TIME_PRECISION = "Quiet hours are set to the minute (HH:MM), without seconds."
SMS_MAX_CHARS = 1600
_MAX_MINUTES_BEFORE = 30 * 24 * 60


@dataclass(frozen=True)
class ReminderKind:
    kind: str
    minutes_before: int


@dataclass(frozen=True)
class ReminderRules:
    enabled: bool
    kinds: tuple[ReminderKind, ...]
    template: str
    quiet_start: time
    quiet_end: time


def kinds_parse(raw: Any) -> tuple[ReminderKind, ...]:
    """``ReminderSettings.kinds`` as typed kinds; RuleError("kinds", KINDS_INVALID) (a
    ValueError) when malformed. An empty list is allowed: no reminders are planned."""
    if not isinstance(raw, list):
        raise RuleError("kinds", KINDS_INVALID)
    kinds: list[ReminderKind] = []
    for item in raw:
        if not isinstance(item, Mapping):
            raise RuleError("kinds", KINDS_INVALID)
        name, minutes = item.get("kind"), item.get("minutes_before")
        if not isinstance(name, str) or not name or len(name) > 32:
            raise RuleError("kinds", KINDS_INVALID)
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise RuleError("kinds", KINDS_INVALID)
        if not 1 <= minutes <= _MAX_MINUTES_BEFORE:
            raise RuleError("kinds", KINDS_INVALID)
        kinds.append(ReminderKind(kind=name, minutes_before=minutes))
    if len({k.kind for k in kinds}) != len(kinds) or len({k.minutes_before for k in kinds}) != len(
        kinds
    ):
        raise RuleError("kinds", KINDS_INVALID)
    return tuple(kinds)


def template_check(template: Any) -> None:
    """RuleError("template", ...) unless ``template`` is a non-blank format string of at most
    one SMS message that only uses the known ``{placeholders}``."""
    if not isinstance(template, str) or not template.strip():
        raise RuleError("template", TEMPLATE_BLANK)
    if len(template) > SMS_MAX_CHARS:
        raise RuleError("template", TEMPLATE_TOO_LONG.format(max=SMS_MAX_CHARS))
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise RuleError("template", TEMPLATE_BROKEN.format(error=error)) from None
    for name in names:
        if name not in TEMPLATE_FIELDS:
            raise RuleError(
                "template",
                TEMPLATE_INVALID.format(name=name, choices=", ".join(sorted(TEMPLATE_FIELDS))),
            )
    # Conversions and format specs ({kind!x}, {local_time:d}) parse but fail when rendered: render
    # once with sample text (every value is a string at send time) so they are refused here.
    try:
        template.format_map(dict.fromkeys(TEMPLATE_FIELDS, "sample"))
    except (ValueError, KeyError, IndexError, AttributeError) as error:
        raise RuleError("template", TEMPLATE_BROKEN.format(error=error)) from None


def quiet_time_check(value: time, *, field: str) -> None:
    """A quiet-hours bound is a wall-clock time (each facility's zone) to the minute. Equal
    bounds mean no quiet hours; a start after the end crosses midnight (21:00-07:00)."""
    if value.second or value.microsecond:
        raise RuleError(field, QUIET_TIME_PRECISION)


SETTINGS_RULES: Mapping[str, Callable[[Any], object]] = {
    "kinds": kinds_parse,
    "template": template_check,
    "quiet_start": lambda value: quiet_time_check(value, field="quiet_start"),
    "quiet_end": lambda value: quiet_time_check(value, field="quiet_end"),
}


def settings_problems(values: Mapping[str, Any]) -> dict[str, list[str]]:
    """Every rule of ``SETTINGS_RULES`` whose field is in ``values`` (a form's or a serializer's
    cleaned data: fields their own parsing refused are absent), as {field: [message]}; empty
    when the settings are valid. The admin form, the API and the service all call this."""
    problems: dict[str, list[str]] = {}
    for name, rule in SETTINGS_RULES.items():
        if name not in values:
            continue
        try:
            rule(values[name])
        except RuleError as error:
            problems.setdefault(error.field, []).append(error.message)
    return problems


def rules_load() -> ReminderRules:
    """This tenant's rules (one query); the defaults when the tenant never saved any."""
    row = ReminderSettings.objects.filter(singleton=1).first() or ReminderSettings()
    template = row.template or DEFAULT_REMINDER_TEMPLATE
    try:
        template_check(template)
    except ValueError as error:
        # Saved before the check refused it: one tenant's broken template must not stop its
        # reminders (every claim would fail on it); send with the default text and say so.
        logger.warning("reminder template unusable (%s); sending with the default template", error)
        template = DEFAULT_REMINDER_TEMPLATE
    return ReminderRules(
        enabled=row.enabled,
        kinds=kinds_parse(row.kinds),
        template=template,
        quiet_start=row.quiet_start,
        quiet_end=row.quiet_end,
    )


def reminders_planned(
    *, starts_at: datetime, kinds: Sequence[ReminderKind], now: datetime
) -> list[tuple[str, datetime]]:
    """(kind, due_at) for an appointment starting at ``starts_at``: every kind still in the
    future, plus — so that a booking made late still gets one reminder — the single latest kind
    whose time has already passed (sent at once). Nothing once the appointment has started."""
    if starts_at <= now:
        return []
    planned = [(k.kind, starts_at - timedelta(minutes=k.minutes_before)) for k in kinds]
    future = [(kind, due) for kind, due in planned if due > now]
    past = [(kind, due) for kind, due in planned if due <= now]
    if past:
        future.append(max(past, key=lambda item: item[1]))
    return future


def _in_window(local: time, start: time, end: time) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def quiet_hours_end(
    *, at: datetime, zone: str, quiet_start: time, quiet_end: time
) -> datetime | None:
    """If ``at`` (aware) falls in the quiet window of the facility's zone, the UTC instant the
    window ends; otherwise None. Wall-clock arithmetic happens in the local zone, so a DST
    change inside the window moves the UTC answer by the hour, as the clock on the wall does."""
    tz = zoneinfo.ZoneInfo(zone)
    local = at.astimezone(tz)
    if not _in_window(local.time(), quiet_start, quiet_end):
        return None
    end_date = local.date()
    if quiet_start > quiet_end and local.time() >= quiet_start:
        end_date += timedelta(days=1)
    # A wall time inside a spring-forward gap (fold=0) maps to the instant the clock shows it
    # an hour late, i.e. just after the gap: never earlier than the window's end.
    return datetime.combine(end_date, quiet_end, tzinfo=tz).astimezone(UTC)


def render(
    *,
    template: str,
    kind: str,
    starts_at: datetime,
    zone: str,
    patient_given_name: str,
    patient_family_name: str,
    facility_name: str,
) -> str:
    """The SMS text, with the appointment time in the facility's local time."""
    return _render_whole(
        template=template,
        kind=kind,
        starts_at=starts_at,
        zone=zone,
        patient_given_name=patient_given_name,
        patient_family_name=patient_family_name,
        facility_name=facility_name,
    )[:SMS_MAX_CHARS]


def _render_whole(
    *,
    template: str,
    kind: str,
    starts_at: datetime,
    zone: str,
    patient_given_name: str,
    patient_family_name: str,
    facility_name: str,
) -> str:
    local = starts_at.astimezone(zoneinfo.ZoneInfo(zone))
    values = {
        "patient_given_name": patient_given_name,
        "patient_family_name": patient_family_name,
        "facility_name": facility_name,
        "local_date": local.strftime("%a %d %b %Y"),
        "local_time": local.strftime("%H:%M"),
        "kind": kind,
    }
    return template.format_map(values)


# The preview's made-up appointment: never a real patient's data.
SAMPLE_VALUES = {
    "patient_given_name": "Alex",
    "patient_family_name": "Sample",
    "facility_name": "Sample Clinic",
}
SAMPLE_KIND = "day_before"
SAMPLE_LOCAL_TIME = time(9, 30)


@dataclass(frozen=True)
class Preview:
    text: str
    characters: int
    truncated: bool


def preview_render(*, template: str, kind: str, now: datetime) -> Preview:
    """``template`` rendered for a made-up patient at a made-up facility, for an appointment
    tomorrow at 09:30 (UTC wall clock, so the text shows 09:30), cut at the SMS limit exactly as
    a real send is. The caller has checked the template (``template_check``)."""
    tomorrow = now.astimezone(UTC).date() + timedelta(days=1)
    whole = _render_whole(
        template=template,
        kind=kind,
        starts_at=datetime.combine(tomorrow, SAMPLE_LOCAL_TIME, tzinfo=UTC),
        zone="UTC",
        **SAMPLE_VALUES,
    )
    text = whole[:SMS_MAX_CHARS]
    return Preview(text=text, characters=len(text), truncated=len(whole) > len(text))


def next_utc_midnight(now: datetime) -> datetime:
    return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(0), tzinfo=UTC)


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))
