"""What the chart tests know about the charts, without running anything: where they are, and for each
``aigw-controller`` flag its chart value (``FLAGS``), plus a set of values away from every default
(``non_default()``), and the README's ``helm install`` commands (``readme_helm_installs()``). Imported by
tests/integration/helm and by tests/unit/deploy (which needs no helm)."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CHARTS = ROOT / "charts"
CHART = CHARTS / "ai-gateway-py"
CRD_CHART = CHARTS / "ai-gateway-py-crds"
# Envoy Gateway's Helm values that register our extension server: the one copy, shipped in the chart.
EG_VALUES = CHART / "files" / "envoy-gateway-values.yaml"
# The namespace config/default installs into, and Envoy Gateway's values expect.
NAMESPACE = "envoy-ai-gateway-system"
README = ROOT / "README.md"
# What the tests put for the README's placeholders.
README_PLACEHOLDERS = {"<registry>": "registry.test", "<tag>": "v0.0.1"}

# aigw-controller's option (argparse dest) -> (its value under `controller.` in the chart, a non-default
# value, what the parsed option must then be). kubeconfig is the one flag without a value: in a pod the
# controller uses its ServiceAccount.
FLAGS: dict[str, tuple[str, Any, Any]] = {
    "enable_inference_extension": ("enableInferenceExtension", False, False),
    "extension_ref_name": ("extensionRefName", "my-picker", "my-picker"),
    "cluster_domain": ("clusterDomain", "corp.internal", "corp.internal"),
    "dns_server": ("dnsServer", "10.96.0.10:53", "10.96.0.10:53"),
    "extproc_image": ("extprocImage", "registry.test/extproc:v9", "registry.test/extproc:v9"),
    "extproc_log_level": ("extprocLogLevel", "debug", "debug"),
    "extproc_address": ("extprocAddress", "10.1.2.3:1063", "10.1.2.3:1063"),
    "extproc_auth_dir": ("extprocAuthDir", "/var/run/aigw-auth", "/var/run/aigw-auth"),
    "max_body_bytes": ("maxBodyBytes", "8Mi", 8 * 1024 * 1024),
    "extproc_mtls": ("extprocMtls", False, False),
    "extension_server_address": ("extensionServerPort", 9443, "0.0.0.0:9443"),
    "leader_elect": ("leaderElect", False, False),
    "leader_election_namespace": ("leaderElectionNamespace", "leases", "leases"),
    "metrics_bind_address": ("metricsPort", 9090, ":9090"),
    "health_probe_bind_address": ("healthProbePort", 9091, ":9091"),
    "watch_namespace": ("watchNamespace", "team-a", "team-a"),
    "aws_sts_endpoint": ("awsStsEndpoint", "https://sts.example.test", "https://sts.example.test"),
    "azure_authority_host": (
        "azureAuthorityHost",
        "https://login.example.test",
        "https://login.example.test",
    ),
    "concurrent_reconciles": ("concurrentReconciles", 9, 9),
    "log_level": ("logLevel", "warning", "warning"),
}
NOT_A_VALUE = {"kubeconfig"}

# Every other value set away from its default (and valid for the API server in the test's namespace).
NON_DEFAULT: dict[str, Any] = {
    "replicaCount": 3,
    "image.repository": "registry.test/ai-gateway-py",
    "image.tag": "v1.2.3",
    "image.pullPolicy": "Always",
    "imagePullSecrets": [{"name": "regcred"}],
    "controller.leaderElect": True,  # replicas > 1
    "extraArgs": ["--log-level=debug"],
    "extraEnv": [{"name": "PYTHONASYNCIODEBUG", "value": "1"}],
    "serviceAccount.name": "aigw-sa",
    "serviceAccount.annotations": {"example.test/role": "aigw"},
    "service.type": "NodePort",
    "service.annotations": {"example.test/scrape": "true"},
    "podAnnotations": {"example.test/pod": "yes"},
    "podLabels": {"team": "ai"},
    "podSecurityContext": {"runAsNonRoot": True, "runAsUser": 65532, "fsGroup": 65532},
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
    "readinessProbe": {"periodSeconds": 3, "failureThreshold": 5},
    "livenessProbe": {"periodSeconds": 20, "timeoutSeconds": 3},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 1,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "ai-gateway-controller"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "ai-gateway-controller"}},
        }
    ],
}


def flag_values() -> dict[str, Any]:
    """Each ``controller.`` value of FLAGS at its non-default value."""
    return {f"controller.{key}": value for key, value, _ in FLAGS.values()}


def non_default(*, namespace: str, fullname: str | None = None) -> dict[str, Any]:
    """Every chart value away from its default (but leaderElect: replicas > 1 need it); the Lease's namespace
    is ``namespace`` (it must exist)."""
    values = flag_values()
    values.update(NON_DEFAULT)
    values["controller.leaderElectionNamespace"] = namespace
    if fullname:
        values["fullnameOverride"] = fullname
    return values


def eg_values_for(*, service: str, namespace: str, port: int = 1063) -> dict[str, Any]:
    """EG_VALUES pointed at our Service ``service`` in ``namespace``: what the install notes must print."""
    values: dict[str, Any] = yaml.safe_load(EG_VALUES.read_text())
    fqdn = values["config"]["envoyGateway"]["extensionManager"]["service"]["fqdn"]
    fqdn.update(hostname=f"{service}.{namespace}.svc.cluster.local", port=port)
    return values


def printed_eg_values(notes: str) -> Any:
    """The Envoy Gateway values in ``helm get notes`` output (after its ``---`` line)."""
    return yaml.safe_load(notes.split("\n---\n", 1)[1])


def helm_installs(markdown: str) -> dict[str, list[str]]:
    """The ``helm install`` commands of the first ``sh`` code block of ``markdown``, by release name: each
    command's arguments after ``helm`` (continuation lines joined, README_PLACEHOLDERS filled in; paths as
    written)."""
    block = markdown.split("```sh\n", 1)[1].split("```", 1)[0]
    for placeholder, value in README_PLACEHOLDERS.items():
        block = block.replace(placeholder, value)
    installs: dict[str, list[str]] = {}
    for line in block.replace("\\\n", " ").splitlines():
        args = shlex.split(line, comments=True)
        if args[:2] == ["helm", "install"]:
            installs[args[2]] = args[1:]
    return installs


def readme_helm_installs() -> dict[str, list[str]]:
    """``helm_installs`` of the README's "Install in a cluster" section (paths relative to the repository)."""
    return helm_installs(README.read_text().split("\n## Install in a cluster", 1)[1].split("\n## ", 1)[0])


def option_value(args: list[str], *names: str, default: str) -> str:
    """The value of the first of ``names`` (e.g. ``-n``, ``--namespace``) in ``args``, else ``default``."""
    for i, arg in enumerate(args[:-1]):
        if arg in names:
            return args[i + 1]
    return default
