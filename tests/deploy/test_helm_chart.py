"""The Helm chart, checked without a cluster: rendered by Helm's own engine (helm-python-sdk binds
Helm's Go SDK; no helm binary, no network), linted strictly, every manifest validated against the
Kubernetes OpenAPI schemas (kubernetes-validate), and the properties that matter asserted."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from tests.deploy.chart import (
    CHART,
    VALUES_FILES,
    Manifest,
    by_kind,
    containers,
    pod_specs,
    render,
    values_file,
)

# A version kubernetes-validate ships schemas for; the chart's kubeVersion floor is 1.27.
KUBE_VERSION = "1.30.0"
QUEUES = ("default", "sms")
MIGRATION_STEPS = [
    ["python", "manage.py", "migrate_schemas", "--shared", "--noinput"],
    ["python", "manage.py", "ensure_template_schema"],
    [
        "python",
        "manage.py",
        "migrate_schemas",
        "--tenant",
        "--executor=subprocess",
        "--parallel",
        "<N>",
        "--noinput",
    ],
    ["python", "manage.py", "check_lock_capacity"],
    ["python", "manage.py", "check_schema_drift"],
]


def _hook(manifest: Manifest) -> tuple[str, int] | None:
    annotations = manifest["metadata"].get("annotations") or {}
    if "helm.sh/hook" not in annotations:
        return None
    return annotations["helm.sh/hook"], int(annotations.get("helm.sh/hook-weight", "0"))


# --- lint and schema validation --------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUES_FILES))
def test_helm_lint_strict_is_clean(name: str) -> None:
    report = helm.lint(CHART, values_file(name), strict=True, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert problems == []


def test_every_manifest_is_valid_kubernetes(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    assert len(manifests) >= 10
    for manifest in manifests:
        # strict: unknown fields (a typo such as `readinesProbe`) fail too.
        kubernetes_validate.validate(manifest, KUBE_VERSION, strict=True)


def test_invalid_manifest_is_caught_by_the_validator() -> None:
    """Guards the guard: the validator really rejects a broken Deployment."""
    deployment = by_kind(render(None), "Deployment")["verdant-web"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"securityContext": {"readOnlyRootFilesystem": False}}, "readOnlyRootFilesystem"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "runAsNonRoot"),
        ({"beat": {"replicas": 2}}, "replicas"),
        ({"config": {"allowedHosts": ["*"]}}, "allowedHosts"),
        ({"config": {"csrfTrustedOrigins": ["https://*.verdant.health"]}}, "csrfTrustedOrigins"),
        ({"config": {"csrfTrustedOrigins": ["http://verdant.health"]}}, "csrfTrustedOrigins"),
        ({"secrets": {"secretKey": "short"}}, "secretKey"),
        ({"migrations": {"parallel": 0}}, "parallel"),
        ({"web": {"resources": {"requests": {"memory": None}}}}, "memory"),
    ],
    ids=[
        "writable-root",
        "root-user",
        "two-beats",
        "any-host",
        "wildcard-origin",
        "http-origin",
        "weak-key",
        "no-parallel",
        "no-mem",
    ],
)
def test_values_schema_refuses_unsafevalues_file(override: dict[str, Any], message: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError, match=message):
        chart.render(values=override, name="verdant")


# --- what the release runs -------------------------------------------------------------------


def test_web_runs_gunicorn_with_health_probes(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    pod = by_kind(manifests, "Deployment")["verdant-web"]["spec"]["template"]["spec"]
    (web,) = pod["containers"]
    assert web["command"] == [
        "gunicorn",
        "-c",
        "settings/gunicorn.conf.py",
        "settings.wsgi:application",
    ]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert web["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    env = {item["name"]: item["value"] for item in web["env"]}
    assert {"GUNICORN_WORKERS", "GUNICORN_THREADS", "GUNICORN_TIMEOUT"} <= env.keys()
    # gunicorn's graceful timeout fits inside the pod's grace period, after the preStop sleep.
    assert int(env["GUNICORN_GRACEFUL_TIMEOUT"]) + int(
        web["lifecycle"]["preStop"]["exec"]["command"][1]
    ) < int(pod["terminationGracePeriodSeconds"])


def test_one_worker_deployment_per_queue(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    deployments = by_kind(manifests, "Deployment")
    for queue in QUEUES:
        (worker,) = deployments[f"verdant-worker-{queue}"]["spec"]["template"]["spec"]["containers"]
        assert worker["command"][:6] == [
            "celery",
            "-A",
            "settings.celery_app",
            "worker",
            "-Q",
            queue,
        ]


def test_beat_is_exactly_one_replica_recreated(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    beat = by_kind(manifests, "Deployment")["verdant-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert beat["spec"]["template"]["spec"]["containers"][0]["command"][:4] == [
        "celery",
        "-A",
        "settings.celery_app",
        "beat",
    ]
    assert "verdant-beat" not in by_kind(manifests, "HorizontalPodAutoscaler")
    assert "verdant-beat" not in by_kind(manifests, "PodDisruptionBudget")


def test_every_container_is_locked_down_and_sized(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    pods = pod_specs(manifests)
    assert len(pods) == 6  # web, realtime, two workers, beat, migration Job
    for name, pod in pods.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["securityContext"]["runAsUser"] > 0, name
        assert pod["automountServiceAccountToken"] is False, name
        for container in containers(pod):
            where = f"{name}/{container['name']}"
            security = container["securityContext"]
            assert security["runAsNonRoot"] is True, where
            assert security["readOnlyRootFilesystem"] is True, where
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where
            assert not security.get("privileged"), where
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert "memory" in resources["limits"], where
            # The root filesystem is read-only: /tmp is the one writable scratch space.
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert "/tmp" in mounts, where  # noqa: S108 (a path in a manifest)


def test_migration_job_is_an_ordered_pre_deploy_hook(rendered: tuple[str, list[Manifest]]) -> None:
    values_name, manifests = rendered
    parallel = str((values_file(values_name) or {}).get("migrations", {}).get("parallel", 4))
    job = by_kind(manifests, "Job")["verdant-migrate"]
    hook = _hook(job)
    assert hook is not None
    assert set(hook[0].split(",")) == {"pre-install", "pre-upgrade"}
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    commands = [container["command"] for container in containers(pod)]
    expected = [[parallel if arg == "<N>" else arg for arg in step] for step in MIGRATION_STEPS]
    assert commands == expected

    # Everything the Job reads exists before it: hook resources with a lower weight.
    env_sources = {
        ref.get("configMapRef", ref.get("secretRef"))["name"]
        for container in containers(pod)
        for ref in container["envFrom"]
    }
    earlier = {
        m["metadata"]["name"]
        for m in manifests
        if (h := _hook(m)) is not None and h[1] < hook[1] and m["kind"] != "Job"
    }
    external = {(values_file(values_name) or {}).get("secrets", {}).get("existingSecret")}
    assert env_sources <= earlier | external
    assert pod["serviceAccountName"] in earlier


def test_hook_config_matches_the_release_config(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    config_maps = by_kind(manifests, "ConfigMap")
    assert config_maps["verdant-migrate"]["data"] == config_maps["verdant"]["data"]
    assert config_maps["verdant"]["data"]["DJANGO_SETTINGS_MODULE"] == "settings.production"
    secrets = by_kind(manifests, "Secret")
    if secrets:
        # A generated SECRET_KEY is generated once per render: hook and release agree.
        assert secrets["verdant-migrate"]["data"] == secrets["verdant"]["data"]
        assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"} <= secrets["verdant"]["data"].keys()


def test_production_values_scale_out_and_keep_secrets_external() -> None:
    manifests = render(values_file("production"))
    hpas = by_kind(manifests, "HorizontalPodAutoscaler")
    assert set(hpas) == {
        "verdant-web",
        "verdant-realtime",
        "verdant-worker-default",
        "verdant-worker-sms",
    }
    assert hpas["verdant-web"]["spec"]["minReplicas"] == 3
    # The HPA owns the replica count: the Deployment must not reset it on every upgrade.
    for name in hpas:
        assert "replicas" not in by_kind(manifests, "Deployment")[name]["spec"]
    assert set(by_kind(manifests, "PodDisruptionBudget")) == set(hpas)
    assert by_kind(manifests, "Secret") == {}
    for pod in pod_specs(manifests).values():
        for container in containers(pod):
            secret_refs = [
                ref["secretRef"]["name"] for ref in container["envFrom"] if "secretRef" in ref
            ]
            assert secret_refs == ["verdant-runtime"]
    config = by_kind(manifests, "ConfigMap")["verdant"]["data"]
    assert config["OTEL_SDK_DISABLED"] == "false"
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://otel-collector")
    # No origin trusted besides each request's own host: no wildcard across tenant hosts.
    assert "CSRF_TRUSTED_ORIGINS" not in config
    assert len(by_kind(manifests, "NetworkPolicy")) == 3  # web, realtime, default


def test_ingress_serves_base_and_wildcard_tenant_hosts_with_tls() -> None:
    manifests = render(values_file("production"))
    ingress = by_kind(manifests, "Ingress")["verdant"]
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert hosts == ["verdant.health", "*.verdant.health"]
    assert ingress["spec"]["tls"] == [
        {"hosts": hosts, "secretName": "verdant-wildcard-tls"},
    ]
    backend = ingress["spec"]["rules"][1]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] in by_kind(manifests, "Service")


def test_minimal_values_render_a_small_release() -> None:
    manifests = render(values_file("minimal"))
    assert by_kind(manifests, "HorizontalPodAutoscaler") == {}
    assert by_kind(manifests, "PodDisruptionBudget") == {}
    assert by_kind(manifests, "Ingress") == {}
    assert by_kind(manifests, "Deployment")["verdant-web"]["spec"]["replicas"] == 1


def test_release_name_prefixes_every_resource() -> None:
    manifests = render(None, release="clinics-eu")
    names = {m["metadata"]["name"] for m in manifests}
    assert all(name.startswith("clinics-eu-verdant") for name in names), names
