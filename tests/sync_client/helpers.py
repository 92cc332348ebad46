"""Small helpers shared by the real-client scenarios: rows made through the REST API (what
another user or the web app does), and reading a sync answer."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.security.world import BASE_TIME, SHARED
from tests.sync.wmdb import ServerClient

FARM = str(SHARED["farms.farm"])
FARM_2 = str(SHARED["farms.farm#2"])
FIELD = str(SHARED["farms.field"])
FIELD_2 = str(SHARED["farms.field#2"])
PLANTING = str(SHARED["farms.planting"])
CROP = str(SHARED["farms.crop"])
FACILITY = str(SHARED["clinical.facility"])

_slots = itertools.count(1)


def tag() -> str:
    return uuid.uuid4().hex[:8]


def square(lon: float, lat: float, size: float = 0.01) -> dict[str, Any]:
    ring = [[lon, lat], [lon + size, lat], [lon + size, lat + size], [lon, lat + size], [lon, lat]]
    return {"type": "Polygon", "coordinates": [ring]}


def field_create(client: ServerClient, *, farm: str = FARM, name: str = "") -> str:
    body = client.ok(
        client.post(
            "/api/v1/farms/fields/",
            {"farm": farm, "name": name or f"field {tag()}", "boundary": square(36.3, -0.3)},
        ),
        201,
    )
    return str(body["id"])


def planting_create(client: ServerClient, *, field: str = FIELD, season: str = "") -> str:
    body = client.ok(
        client.post(
            "/api/v1/farms/plantings/",
            {
                "field": field,
                "crop": CROP,
                "season": season or f"season {tag()}",
                "planted_on": "2026-03-01",
            },
        ),
        201,
    )
    return str(body["id"])


def observation_create(
    client: ServerClient, *, field: str = FIELD, planting: str | None = None, text: str = ""
) -> str:
    body = client.ok(
        client.post(
            "/api/v1/farms/observations/",
            {
                "field": field,
                "planting": planting,
                "observed_at": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat(),
                "kind": "rainfall",
                "value": 3.0,
                "unit": "mm",
                "text": text or f"rest observation {tag()}",
            },
        ),
        201,
    )
    return str(body["id"])


def local_observation(
    text: str, *, field: str = FIELD, planting: str | None = PLANTING, **extra: Any
) -> dict[str, Any]:
    """The raw columns of an observation created on a device."""
    return {
        "field_id": field,
        "planting_id": planting,
        "observed_at": int(time.time() * 1000) - 60_000,
        "kind": "rainfall",
        "value": 4.5,
        "unit": "mm",
        "text": text,
        **extra,
    }


def patient_create(client: ServerClient, *, facility: str = FACILITY) -> str:
    body = client.ok(
        client.post(
            "/api/v1/clinical/patients/",
            {
                "facility": facility,
                "mrn": f"MRN-{tag().upper()}",
                "given_name": "Grace",
                "family_name": f"Hopper {tag()}",
                "birth_date": "1990-12-09",
                "phone": "+4915100000000",
            },
        ),
        201,
    )
    return str(body["id"])


def appointment_create(client: ServerClient, *, patient: str, clinician: str) -> str:
    """An appointment in a slot of its own (one hour each, from ten days after the world's
    seeded one), so bookings of different tests never overlap."""
    starts = BASE_TIME + dt.timedelta(days=10, hours=next(_slots))
    body = client.ok(
        client.post(
            "/api/v1/clinical/appointments/",
            {
                "patient": patient,
                "clinician": clinician,
                "starts_at": starts.isoformat(),
                "ends_at": (starts + dt.timedelta(minutes=30)).isoformat(),
                "reason": f"visit {tag()}",
            },
        ),
        201,
    )
    return str(body["id"])


def results_by_id(reply: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every push result of a sync answer, by row id (the last one wins)."""
    return {
        result["id"]: result
        for push in reply["pushes"]
        if isinstance(push.get("body"), dict)
        for result in push["body"].get("results", [])
    }


def ids(dump: dict[str, list[dict[str, Any]]], table: str) -> set[str]:
    return {row["id"] for row in dump[table]}


def pushed_tables(reply: dict[str, Any]) -> set[str]:
    """Tables with at least one row in any push of a sync answer."""
    return {
        table
        for push in reply["pushes"]
        for table, counts in push["counts"].items()
        if any(counts.values())
    }


@contextlib.contextmanager
def precondition() -> Iterator[None]:
    """Assertions that must hold before a known server failure: one failing here is a real
    failure (``pytest.fail``), not the test's ``xfail(raises=AssertionError)``."""
    try:
        yield
    except AssertionError as exc:
        pytest.fail(f"precondition: {exc}")
