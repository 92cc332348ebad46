"""Schema fuzzing fixtures: tenants ``fz-a`` / ``fz-b`` committed (tests/security/world.py), a
real gunicorn serving them, the LIVE OpenAPI document fetched from it, and an access token per
role of tenant A (logged in over HTTP, as a client would)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import schemathesis
from django.db import connection
from schemathesis.config import SchemathesisConfig

from tests.security.live import LiveServer, live_gunicorn
from tests.security.world import ROLES, World, world_create, world_drop

PREFIX = "fz"
# Examples per operation and role. CI keeps the run to a few minutes; `make fuzz` raises it.
MAX_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "4"))
# CI replays the same examples every run (reproducible); the long run explores (FUZZ_RANDOM=1).
RANDOM = os.environ.get("FUZZ_RANDOM", "") == "1"
SEED = int(os.environ.get("FUZZ_SEED", "20261123"))
# Shrinking multiplies the requests of a failing case; the long run turns it on.
SHRINK = os.environ.get("FUZZ_SHRINK", "") == "1"


@dataclass(frozen=True)
class FuzzTarget:
    server: LiveServer
    world: World
    # role -> access token of tenant A; "anonymous" -> ""
    tokens: dict[str, str]
    document: dict[str, Any]

    @property
    def host(self) -> str:
        return self.world.a.host


def _login(server: LiveServer, world: World, role: str) -> str:
    from tests.security.world import email_for

    response = requests.post(
        f"{server.url}/api/v1/auth/token/",
        json={"email": email_for(role), "password": world.a.password},
        headers={"Host": world.a.host},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access"])


@pytest.fixture(scope="package")
def fuzz_target(
    django_db_setup: None, django_db_blocker: pytest.FixtureRequest
) -> Iterator[FuzzTarget]:
    with django_db_blocker.unblock():  # type: ignore[attr-defined]
        assert not connection.in_atomic_block
        world = world_create(PREFIX)
        try:
            with live_gunicorn(workers=2, name="fuzz") as server:
                tokens = {"anonymous": ""}
                tokens.update({role: _login(server, world, role) for role in ROLES})
                document = requests.get(
                    f"{server.url}/api/v1/schema/",
                    headers={"Host": world.a.host, "Accept": "application/json"},
                    timeout=60,
                )
                assert document.status_code == 200, document.text[:500]
                yield FuzzTarget(
                    server=server, world=world, tokens=tokens, document=document.json()
                )
        finally:
            connection.close()
            world_drop(PREFIX)


@pytest.fixture(scope="package")
def fuzz_schema(fuzz_target: FuzzTarget) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "mode": "all",
                "no-shrink": not SHRINK,
                "database": "none",
            },
            "phases": {"coverage": {"enabled": False}, "stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_dict(fuzz_target.document, config=config)
