"""The Helm chart rendered for the tests (tests/deploy/test_helm_*.py, tests/realtime): by Helm's
own engine (helm-python-sdk binds Helm's Go SDK; no helm binary, no network), into the parsed
manifests, with the lookups the tests share. The ``rendered`` fixture (conftest.py) renders each
CI values file once per module."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

CHART = Path(__file__).resolve().parents[2] / "helm" / "verdant"
VALUES_FILES = {
    "defaults": None,
    "production": CHART / "ci" / "production-values.yaml",
    "minimal": CHART / "ci" / "minimal-values.yaml",
}

Manifest = dict[str, Any]


def values_file(name: str) -> dict[str, Any] | None:
    """The values of CI values file ``name`` (None: the chart's defaults)."""
    path = VALUES_FILES[name]
    return None if path is None else yaml.safe_load(path.read_text())


def render(values: dict[str, Any] | None, *, release: str = "verdant") -> list[Manifest]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values=values, name=release, namespace="verdant", is_install=True)
    manifests: list[Manifest] = []
    for template, text in sorted(rendered.items()):
        if not template.endswith((".yaml", ".yml")):
            continue
        manifests.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return manifests


def by_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def pod_specs(manifests: list[Manifest]) -> dict[str, dict[str, Any]]:
    return {
        f"{m['kind']}/{m['metadata']['name']}": m["spec"]["template"]["spec"]
        for m in manifests
        if m["kind"] in {"Deployment", "Job"}
    }


def containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod.get("initContainers", []), *pod["containers"]]
