"""The chart's real-time process (issue 18, item 8): its own Deployment running uvicorn on
settings.asgi as `make run` and the real-time tests do, HTTP probes on the ASGI app's probe
routes, its own HPA and PDB, a `/ws/` Ingress with proxy timeouts above the ping interval, a
NetworkPolicy letting the ingress controller in, and a shutdown that fits its grace period.

Rendered by Helm's own engine and validated like the rest of the chart (tests/deploy/
test_helm_chart.py renders and validates every manifest of the three CI values files, these
included); here, what the real-time resources must say."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.deploy.chart import CHART, Manifest, by_kind, render, values_file

NAME = "verdant-realtime"


def _container(manifests: list[Manifest]) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = by_kind(manifests, "Deployment")[NAME]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return pod, container


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_realtime_runs_uvicorn_on_the_asgi_app(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    _, container = _container(manifests)
    command = container["command"]
    assert command[:2] == ["uvicorn", "settings.asgi:application"]
    # As settings/devstack.py (make run) and tests/realtime/live.py run it.
    assert _flag(command, "--ws-per-message-deflate") == "false"
    assert _flag(command, "--lifespan") == "off"
    assert _flag(command, "--host") == "0.0.0.0"  # noqa: S104 (a pod listens on its own IP)
    port = container["ports"][0]
    assert port["name"] == "http"
    assert _flag(command, "--port") == str(port["containerPort"])
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["VERDANT_PROCESS"] == "realtime"
    # The same configuration and secrets as every other pod.
    refs = [next(iter(ref.values()))["name"] for ref in container["envFrom"]]
    web = by_kind(manifests, "Deployment")["verdant-web"]["spec"]["template"]["spec"]
    assert refs == [next(iter(ref.values()))["name"] for ref in web["containers"][0]["envFrom"]]


def test_connections_per_user_is_a_documented_value_of_the_realtime_pods() -> None:
    """realtime.maxConnectionsPerUser reaches the realtime pods only, as
    REALTIME_MAX_CONNECTIONS_PER_USER (counted across every pod: leases in Redis), with the
    settings' default of 10."""

    def env_of(manifests: list[Manifest]) -> dict[str, str]:
        _, container = _container(manifests)
        return {item["name"]: item["value"] for item in container["env"]}

    assert env_of(render({}))["REALTIME_MAX_CONNECTIONS_PER_USER"] == "10"
    manifests = render({"realtime": {"maxConnectionsPerUser": 25}})
    assert env_of(manifests)["REALTIME_MAX_CONNECTIONS_PER_USER"] == "25"
    web = by_kind(manifests, "Deployment")["verdant-web"]["spec"]["template"]["spec"]
    assert not any(
        item["name"] == "REALTIME_MAX_CONNECTIONS_PER_USER"
        for item in web["containers"][0].get("env", [])
    )


def test_probes_use_the_asgi_probe_routes(rendered: tuple[str, list[Manifest]]) -> None:
    _, manifests = rendered
    _, container = _container(manifests)
    # platform/realtime/probes.py: /healthz (process up), /readyz (apikit's readiness checks).
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


def _pre_stop_script(container: dict[str, Any]) -> str:
    """The preStop hook's program: the image's python (the image has no curl), stdlib only."""
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["python", "-c"]
    script: str = command[2]
    return script


def test_shutdown_drains_within_the_grace_period(rendered: tuple[str, list[Manifest]]) -> None:
    """The preStop hook sleeps, then drains the process (POST /drain on the pod's own loopback,
    platform/realtime/drain.py) and returns when the window has passed; sleep + drain + uvicorn's
    graceful shutdown fit in the grace period. tests/realtime/test_drain.py runs this hook."""
    _, manifests = rendered
    pod, container = _container(manifests)
    script = _pre_stop_script(container)
    compile(script, "preStop", "exec")
    port = container["ports"][0]["containerPort"]
    assert f'"http://127.0.0.1:{port}/drain", method="POST"' in script
    sleep = int(script.split("time.sleep(")[1].split(")")[0])
    env = {item["name"]: item.get("value") for item in container["env"]}
    drain = int(env["REALTIME_DRAIN_SECONDS"])
    assert sleep >= 0
    assert drain > 0
    # The hook waits for the drain's answer, which comes once the window has passed.
    timeout = int(script.split("timeout=")[1].split(")")[0])
    assert timeout > drain
    graceful = int(_flag(container["command"], "--timeout-graceful-shutdown"))
    assert sleep + drain + graceful < int(pod["terminationGracePeriodSeconds"])
    strategy = by_kind(manifests, "Deployment")[NAME]["spec"]["strategy"]
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_the_drain_window_is_a_value() -> None:
    values = {
        "realtime": {
            "preStopSleepSeconds": 2,
            "drainSeconds": 45,
            "gracefulShutdownSeconds": 10,
            "terminationGracePeriodSeconds": 60,
        }
    }
    _, container = _container(render(values))
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["REALTIME_DRAIN_SECONDS"] == "45"
    script = _pre_stop_script(container)
    assert "time.sleep(2)" in script
    assert "timeout=60" in script
    # The default window is the settings' default (settings/base.py), which fits the default
    # grace period.
    _, default = _container(render({}))
    assert {item["name"]: item.get("value") for item in default["env"]}[
        "REALTIME_DRAIN_SECONDS"
    ] == "20"


def test_ingress_sends_ws_to_realtime_with_timeouts_above_the_ping() -> None:
    manifests = render(values_file("production"))
    ingresses = by_kind(manifests, "Ingress")
    realtime = ingresses[NAME]
    _, container = _container(manifests)
    ping = float(_flag(container["command"], "--ws-ping-interval"))
    annotations = realtime["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert float(annotations[f"nginx.ingress.kubernetes.io/{timeout}"]) > ping
    # The main Ingress keeps the controller's default timeouts (the REST API's) and owns TLS.
    assert not any("timeout" in key for key in ingresses["verdant"]["metadata"]["annotations"])
    assert "cert-manager.io/cluster-issuer" not in annotations
    main_rules = ingresses["verdant"]["spec"]["rules"]
    rules = realtime["spec"]["rules"]
    assert [rule["host"] for rule in rules] == [rule["host"] for rule in main_rules]
    assert realtime["spec"]["tls"] == ingresses["verdant"]["spec"]["tls"]
    assert realtime["spec"]["ingressClassName"] == ingresses["verdant"]["spec"]["ingressClassName"]
    for rule in rules:
        (path,) = rule["http"]["paths"]
        assert (path["path"], path["pathType"]) == ("/ws/", "Prefix")
        assert path["backend"]["service"] == {"name": NAME, "port": {"name": "http"}}
    service = by_kind(manifests, "Service")[NAME]
    assert (
        service["spec"]["selector"]
        == by_kind(manifests, "Deployment")[NAME]["spec"]["selector"]["matchLabels"]
    )
    assert service["spec"]["ports"][0]["targetPort"] == "http"


def test_network_policy_lets_the_ingress_reach_realtime() -> None:
    values = values_file("production")
    assert values is not None
    manifests = render(values)
    policies = by_kind(manifests, "NetworkPolicy")
    labels = by_kind(manifests, "Deployment")[NAME]["spec"]["template"]["metadata"]["labels"]
    admitting = [
        policy
        for policy in policies.values()
        if policy["spec"].get("ingress")
        and all(labels.get(k) == v for k, v in policy["spec"]["podSelector"]["matchLabels"].items())
    ]
    assert [policy["metadata"]["name"] for policy in admitting] == [NAME]
    (rule,) = admitting[0]["spec"]["ingress"]
    assert rule["from"] == values["networkPolicy"].get(
        "ingressFrom", render_defaults_ingress_from()
    )
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    # The web pods' own policy does not select the real-time pods (component differs).
    web = policies["verdant-web"]["spec"]["podSelector"]["matchLabels"]
    assert web["app.kubernetes.io/component"] != labels["app.kubernetes.io/component"]


def render_defaults_ingress_from() -> list[dict[str, Any]]:
    """The default values' ingressFrom (the ingress-nginx namespace)."""
    manifests = render({"networkPolicy": {"enabled": True}})
    return list(by_kind(manifests, "NetworkPolicy")["verdant-web"]["spec"]["ingress"][0]["from"])


def test_own_hpa_and_pdb_scale_down_slowly() -> None:
    manifests = render(values_file("production"))
    hpa = by_kind(manifests, "HorizontalPodAutoscaler")[NAME]
    assert hpa["spec"]["scaleTargetRef"]["name"] == NAME
    assert hpa["spec"]["minReplicas"] == 3
    # Removing a pod disconnects its sockets: one pod per period, after a long window.
    scale_down = hpa["spec"]["behavior"]["scaleDown"]
    assert scale_down["stabilizationWindowSeconds"] >= 300
    assert scale_down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    # The HPA owns the replica count.
    assert "replicas" not in by_kind(manifests, "Deployment")[NAME]["spec"]
    pdb = by_kind(manifests, "PodDisruptionBudget")[NAME]
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "realtime"


def test_minimal_release_runs_one_realtime_pod_without_ingress() -> None:
    manifests = render(values_file("minimal"))
    assert by_kind(manifests, "Deployment")[NAME]["spec"]["replicas"] == 1
    assert NAME not in by_kind(manifests, "Ingress")
    assert NAME not in by_kind(manifests, "HorizontalPodAutoscaler")


def test_realtime_can_be_disabled() -> None:
    manifests = render({"realtime": {"enabled": False}, "networkPolicy": {"enabled": True}})
    assert not [m for m in manifests if m["metadata"]["name"] == NAME]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"realtime": {"ingress": {"proxyTimeoutSeconds": 10}}}, "proxyTimeoutSeconds"),
        (
            {"realtime": {"pingIntervalSeconds": 120, "ingress": {"proxyTimeoutSeconds": 60}}},
            "must exceed realtime.pingIntervalSeconds",
        ),
        (
            {"realtime": {"preStopSleepSeconds": 30, "gracefulShutdownSeconds": 15}},
            "must fit in realtime.terminationGracePeriodSeconds",
        ),
        (
            # 5 + 25 + 10 = 40: the drain window counts, and the sum must stay below the grace.
            {"realtime": {"drainSeconds": 25}},
            "preStopSleepSeconds \\+ realtime.drainSeconds \\+ realtime.gracefulShutdownSeconds",
        ),
        ({"realtime": {"drainSeconds": -1}}, "drainSeconds"),
        ({"realtime": {"resources": {"requests": {"memory": None}}}}, "memory"),
        ({"realtime": {"pingIntervalSeconds": 1}}, "pingIntervalSeconds"),
        ({"realtime": {"workers": 4}}, "workers"),
        ({"realtime": {"maxConnectionsPerUser": 0}}, "maxConnectionsPerUser"),
        ({"realtime": {"maxConnectionsPerUser": "ten"}}, "maxConnectionsPerUser"),
    ],
    ids=[
        "timeout-too-short",
        "timeout-below-ping",
        "grace-too-short",
        "drain-too-long",
        "drain-negative",
        "no-mem",
        "ping-1s",
        "procs",
        "no-connections",
        "connections-not-a-number",
    ],
)
def test_values_refused(override: dict[str, Any], message: str) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmError, match=message):
        chart.render(values=override, name="verdant")
