"""Writes for the audit trail. Each call is one INSERT, synchronous: cheap enough for every request
(perf notes 1.10) and never lost in a queue. If it fails the caller's request fails with it."""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection
from django.db.models import Model
from django_tenants.utils import get_public_schema_name

from apikit.request_context import RequestContext
from apikit.tenancy import current_schema_name
from audit.models import AuditEvent, AuditEventBase
from audit.public.models import PublicAuditEvent

AUDIT_ACTION_UNKNOWN = "Unknown audit action {action!r}; use one of: {choices}."
AUDIT_CHANGED_FIELD_INVALID = "Changed fields are field names, not values: {value!r}."

_MAX_FIELD_NAME = 100
_MAX_USER_AGENT = 400
_MAX_REQUEST_ID = 128
_MAX_TRACE_ID = 64


def audit_object_type(model: type[Model] | Model) -> str:
    """``"<app_label>.<model_name>"`` for a model class or instance, e.g. ``"clinical.patient"``."""
    meta = model._meta
    return f"{meta.app_label}.{meta.model_name}"


def audit_reads_required(model: type[Model] | Model) -> bool:
    """Whether reads of this model are audited: models of sensitive resources (patients and
    everything under them) declare ``audit_reads = True``. Writes are always audited."""
    return bool(getattr(model, "audit_reads", False))


def audit_changed_fields(*, instance: Model, changes: Mapping[str, Any]) -> list[str]:
    """Names of the fields in ``changes`` whose value differs from ``instance``'s (call it before
    the service applies them). Only names leave this function; values are never recorded."""
    return [name for name, value in changes.items() if getattr(instance, name, None) != value]


def _valid_ip(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _as_uuid(value: uuid.UUID | str) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _field_names(values: Iterable[str]) -> list[str]:
    names: list[str] = []
    for value in values:
        if not isinstance(value, str) or not value or len(value) > _MAX_FIELD_NAME:
            raise ValueError(AUDIT_CHANGED_FIELD_INVALID.format(value=value))
        if value not in names:
            names.append(value)
    return names


def audit_event_record(
    *,
    context: RequestContext | None,
    action: AuditEvent.Action | str,
    object_type: str,
    object_ids: Iterable[uuid.UUID | str] = (),
    changed_fields: Iterable[str] = (),
    allowed: bool = True,
) -> AuditEventBase:
    """Append one event to the active schema's trail: the tenant's, or on the public schema (the
    operators' host) ``audit.public``'s. ``context`` is the request's
    (``apikit.request_context``); ``None`` for system work (Celery tasks, management commands),
    which records no actor.

    A list response is ONE event holding every id of the page; a detail read or a write holds
    one id. No transaction of its own: a single INSERT is atomic, and inside the caller's
    transaction the event commits or rolls back with the change it records.
    """
    if action not in _ACTIONS:
        raise ValueError(
            AUDIT_ACTION_UNKNOWN.format(action=action, choices=", ".join(AuditEvent.Action.values))
        )
    model = PublicAuditEvent if current_schema_name() == get_public_schema_name() else AuditEvent
    event = model(
        action=action,
        allowed=allowed,
        object_type=object_type,
        object_ids=[_as_uuid(value) for value in object_ids],
        changed_fields=_field_names(changed_fields),
    )
    if context is not None:
        event.actor_id = _as_uuid(context.actor_id) if context.actor_id else None
        event.actor_email = context.actor_email[:254]
        event.ip = _valid_ip(context.ip)
        event.user_agent = context.user_agent[:_MAX_USER_AGENT]
        event.request_id = context.request_id[:_MAX_REQUEST_ID]
        event.trace_id = context.trace_id[:_MAX_TRACE_ID]
    _insert(event)
    return event


_ACTIONS = frozenset(AuditEvent.Action.values)
# Both trails have the same columns (AuditEventBase).
_COLUMNS = tuple(str(field.column) for field in AuditEvent._meta.concrete_fields)
_OBJECT_IDS_INDEX = _COLUMNS.index(str(AuditEvent._meta.get_field("object_ids").column))
# Identifiers from the models' own metadata, never from input.
_INSERT_SQL: dict[type[AuditEventBase], str] = {
    model: "INSERT INTO {table} ({columns}) VALUES ({values})".format(  # noqa: S608
        table=connection.ops.quote_name(model._meta.db_table),
        columns=", ".join(connection.ops.quote_name(column) for column in _COLUMNS),
        values=", ".join(["%s"] * len(_COLUMNS)),
    )
    for model in (AuditEvent, PublicAuditEvent)
}


def _insert(event: AuditEventBase) -> None:
    """One prepared INSERT in the active schema. An audited list read pays for this on every
    request, and the ORM's insert path (save, signals, SQL compilation) cost twice the round trip
    itself. Append-only still holds: this only inserts, and the trigger guards every other path."""
    params = [getattr(event, column) for column in _COLUMNS]
    # A list page's 50 ids as one array literal ('{id,id,...}', typed by the column; UUIDs need
    # no escaping): psycopg would otherwise adapt each UUID in Python, on every audited list.
    params[_OBJECT_IDS_INDEX] = "{" + ",".join(str(value) for value in event.object_ids) + "}"
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL[type(event)], params)
    event._state.adding = False
    event._state.db = connection.alias


def audit_read_record(
    *,
    context: RequestContext | None,
    model: type[Model],
    objects: Iterable[Model | Mapping[str, Any]],
) -> AuditEventBase:
    """A read of a list page or of one object: one event with every id that was returned (rows
    are model instances, or dicts with an ``id`` from a ``values()`` page)."""
    return audit_event_record(
        context=context,
        action=AuditEvent.Action.READ,
        object_type=audit_object_type(model),
        object_ids=[obj["id"] if isinstance(obj, Mapping) else obj.pk for obj in objects],
    )


def audit_write_record(
    *,
    context: RequestContext | None,
    action: AuditEvent.Action | str,
    instance: Model,
    changed_fields: Iterable[str] = (),
) -> AuditEventBase:
    """A create, update, delete (or other write) of one object."""
    return audit_event_record(
        context=context,
        action=action,
        object_type=audit_object_type(instance),
        object_ids=[instance.pk],
        changed_fields=changed_fields,
    )


_ACTION_BY_METHOD = {
    "GET": AuditEvent.Action.READ,
    "HEAD": AuditEvent.Action.READ,
    "POST": AuditEvent.Action.CREATE,
    "PUT": AuditEvent.Action.UPDATE,
    "PATCH": AuditEvent.Action.UPDATE,
    "DELETE": AuditEvent.Action.DELETE,
}


def audit_action_for_method(method: str) -> AuditEvent.Action | None:
    """The audit action an HTTP method performs; ``None`` for OPTIONS and the like."""
    return _ACTION_BY_METHOD.get(method.upper())


def audit_denied_record(
    *,
    context: RequestContext | None,
    action: AuditEvent.Action | str,
    model: type[Model],
    object_ids: Iterable[uuid.UUID | str] = (),
) -> AuditEventBase:
    """A refused attempt (``allowed=False``), e.g. from the base viewset's ``permission_denied``.
    Record these for authenticated users only, so anonymous traffic cannot flood the trail."""
    return audit_event_record(
        context=context,
        action=action,
        object_type=audit_object_type(model),
        object_ids=object_ids,
        allowed=False,
    )


def audit_permission_change(
    *, context: RequestContext | None, container: Model, user: Model, change: str
) -> AuditEventBase:
    """A grant or revoke of access to a container (a facility, a farm): one event naming the
    container and the user; ``change`` is ``"grant:<level>"`` or ``"revoke:<level>"``."""
    return audit_event_record(
        context=context,
        action=AuditEvent.Action.PERMISSION_CHANGE,
        object_type=audit_object_type(container),
        object_ids=[container.pk, user.pk],
        changed_fields=[change],
    )
