"""The chart's side of issue 20, item 2: every Deployment and Job container names its process
(VERDANT_PROCESS -> the connections' application_name), and the connection bound
(DB_MAX_SCHEMAS_PER_CONNECTION) reaches every pod from config.dbMaxSchemasPerConnection."""

from __future__ import annotations

import pytest

from tests.deploy.chart import Manifest, by_kind, containers, pod_specs, render

EXPECTED = {
    "web": "web",
    "realtime": "realtime",
    "worker": "worker",
    "beat": "beat",
    "migrate": "migrate",
}


def _process_of(name: str) -> str:
    for part, process in EXPECTED.items():
        if part in name:
            return process
    raise AssertionError(f"{name}: which process is this?")


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return render({"config": {"dbMaxSchemasPerConnection": 120}})


def test_every_container_names_its_process(manifests: list[Manifest]) -> None:
    seen = set()
    for name, pod in pod_specs(manifests).items():
        for container in containers(pod):
            env = {item["name"]: item.get("value") for item in container.get("env", [])}
            assert env.get("VERDANT_PROCESS") == _process_of(name), (name, container["name"])
            seen.add(env["VERDANT_PROCESS"])
    assert seen == set(EXPECTED.values())


def test_the_bound_reaches_every_pod_fromvalues_file(manifests: list[Manifest]) -> None:
    maps = by_kind(manifests, "ConfigMap")
    values = {m["data"].get("DB_MAX_SCHEMAS_PER_CONNECTION") for m in maps.values()}
    # The release's ConfigMap and the migration hook's copy carry the same value.
    assert values - {None} == {"120"}


def test_the_default_bound_is_250() -> None:
    maps = by_kind(render(None), "ConfigMap")
    assert {m["data"].get("DB_MAX_SCHEMAS_PER_CONNECTION") for m in maps.values()} - {None} == {
        "250"
    }
