"""Reads for sync: the request's device, which tables and containers a user syncs, devices.

Contract for the push side (part B): ``request_device(request) -> Device | None`` — the device
named by the access token's ``did`` claim (None for a token without one). Authentication has
already refused revoked devices (403 ``device_revoked``) and devices of other users.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet

from apikit.errors import APIError
from apikit.policy import sees_everything, visible_containers
from apikit.process_cache import ProcessCache
from apikit.tenancy import current_schema_name
from sync.models import Device
from sync.registry import SyncTable, sync_tables, tables_not_served_check

DEVICE_CLAIM = "did"
NIL_SCOPE = uuid.UUID(int=0)


# --- devices -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceState:
    """What authentication needs about a device, cached per process."""

    user_id: str
    revoked: bool


_devices: ProcessCache[tuple[str, str], DeviceState] | None = None
_devices_lock = threading.Lock()


def _device_cache() -> ProcessCache[tuple[str, str], DeviceState]:
    global _devices
    if _devices is None:
        with _devices_lock:
            if _devices is None:
                _devices = ProcessCache(
                    name="sync-devices",
                    redis_url=settings.REDIS_URL,
                    key_prefix=str(settings.CACHES["default"]["KEY_PREFIX"]),
                    recheck_seconds=settings.TENANT_ROUTING_RECHECK_SECONDS,
                    cache_misses=False,
                )
    return _devices


def device_state(device_id: str) -> DeviceState | None:
    """The cached state of a device of the current tenant (None: no such device). No query on
    a warm process; ``devices_changed()`` invalidates."""

    def load() -> DeviceState | None:
        row = Device.objects.filter(pk=device_id).values_list("user_id", "revoked_at").first()
        return None if row is None else DeviceState(user_id=str(row[0]), revoked=row[1] is not None)

    if uuid_or_none(device_id) is None:
        return None
    return _device_cache().get((current_schema_name(), str(device_id)), load)


def devices_changed() -> None:
    """Call after revoking a device: this process forgets now, every other once it commits."""
    _device_cache().forget_local()
    transaction.on_commit(_device_cache().publish_change)


def forget_cached_devices() -> None:
    _device_cache().forget_local()


def uuid_or_none(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def request_device_id(request: Any) -> str | None:
    auth = getattr(request, "auth", None)
    if auth is None or not hasattr(auth, "get"):
        return None
    value = auth.get(DEVICE_CLAIM)
    return str(value) if value else None


def request_device(request: Any) -> Device | None:
    """The request's device (from the token's ``did``), or None. One query per call."""
    device_id = request_device_id(request)
    if device_id is None:
        return None
    return Device.objects.filter(pk=device_id, revoked_at__isnull=True).first()


def device_list(*, user: Any) -> QuerySet[Device]:
    """tenant_admin sees every device of the tenant; anyone else their own."""
    devices = Device.objects.select_related("user").order_by("-created_at")
    return devices if sees_everything(user) else devices.filter(user=user)


# --- tables and scope ------------------------------------------------------------------------------


def tables_for_user(*, user: Any, requested: Sequence[str] | None) -> list[SyncTable]:
    """The tables a pull covers: ``requested`` (validated) or every table the role may view."""
    registry = sync_tables()  # the tenant kind's tables
    if requested is None:
        return [table for table in registry.values() if table.may_sync(user)]
    tables_not_served_check(requested)
    unknown = sorted(set(requested) - set(registry))
    if unknown:
        raise APIError(
            status=400,
            code="unknown_table",
            detail=f"Unknown sync table(s): {', '.join(unknown)}. "
            f"Choose from: {', '.join(registry)}.",
        )
    forbidden = sorted(name for name in set(requested) if not registry[name].may_sync(user))
    if forbidden:
        raise APIError(
            status=403,
            code="table_forbidden",
            detail=f"Your role may not sync: {', '.join(forbidden)}.",
        )
    wanted = set(requested)
    return [table for name, table in registry.items() if name in wanted]


@dataclass(frozen=True)
class ContainerSet:
    """The containers of one model whose rows a scope covers: ``ids`` for a scoped user; with
    ``everything`` (tenant_admin) every container except ``ids`` (the archived ones)."""

    everything: bool
    ids: tuple[uuid.UUID, ...]

    def as_json(self) -> dict[str, Any]:
        return {"all": self.everything, "ids": [str(pk) for pk in self.ids]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ContainerSet:
        return cls(everything=bool(data["all"]), ids=tuple(uuid.UUID(pk) for pk in data["ids"]))


@dataclass(frozen=True)
class SyncScope:
    """The containers whose rows a user receives (None: every container, tenant_admin) and a
    digest of everything that decides what a pull sends (role, tables, fields, containers). A
    cursor made under another digest first receives the difference (docs/sync-internals.md)."""

    container_ids: tuple[uuid.UUID, ...] | None
    digest: str
    role: str = ""
    # {wire table: wire fields sent to this user}.
    tables: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # {container model label: containers covered}.
    containers: dict[str, ContainerSet] = field(default_factory=dict)

    def log_filter(self) -> list[uuid.UUID] | None:
        """Ids to match against the change log's ``scope_ids`` (None: no filter)."""
        if self.container_ids is None:
            return None
        return [NIL_SCOPE, *self.container_ids]


def sync_scope(*, user: Any, tables: Sequence[SyncTable]) -> SyncScope:
    """One query per container model for a scoped user, one per container model for an admin
    (the archived containers: archiving one hides every row under it)."""
    hasher = hashlib.sha256()
    role = str(getattr(user, "role", ""))
    hasher.update(f"{role}\x00".encode())
    projected = {
        table.name: tuple(name for name in table.fields if name in table.projection(user))
        for table in tables
    }
    for name in sorted(projected):
        hasher.update(f"{name}:{','.join(projected[name])};".encode())
    container_models = sorted(
        {table.container_model for table in tables if table.container_model is not None},
        key=lambda model: model._meta.label,
    )
    everything = sees_everything(user)
    ids: list[uuid.UUID] = []
    containers: dict[str, ContainerSet] = {}
    for model in container_models:
        hasher.update(f"\x00{model._meta.label}:".encode())
        if everything:
            archived = model._default_manager.filter(archived_at__isnull=False)
            found = list(archived.order_by("pk").values_list("pk", flat=True))
        else:
            visible = visible_containers(user=user, container_model=model).filter(
                archived_at__isnull=True
            )
            found = sorted(visible.values_list("pk", flat=True))
            ids.extend(found)
        for pk in found:
            hasher.update(pk.bytes)
        containers[model._meta.label] = ContainerSet(everything=everything, ids=tuple(found))
    return SyncScope(
        container_ids=None if everything else tuple(ids),
        digest=hasher.hexdigest()[:32],
        role=role,
        tables=projected,
        containers=containers,
    )
