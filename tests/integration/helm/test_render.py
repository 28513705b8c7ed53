"""The charts as Helm renders them (the real helm, no cluster): lint, every aigw-controller flag a value,
the default rendering the same objects as ``make deploy``'s config/default, wrong values refused by the
schema with a message naming them, Envoy Gateway's values pointing at the chart's Service, and a package that
holds it all."""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.main import parse_args
from tests.integration.helm.values import (
    CHART,
    CRD_CHART,
    EG_VALUES,
    FLAGS,
    NAMESPACE,
    ROOT,
    flag_values,
    non_default,
)
from tests.realparts.controlplane import find_binaries
from tests.realparts.helm import HELM_VERSION, Helm, set_args

Doc = dict[str, Any]


def by_kind(docs: list[Doc]) -> dict[tuple[str, str], Doc]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def the(docs: list[Doc], kind: str) -> Doc:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} rendered"
    return found[0]


def container(docs: list[Doc]) -> Doc:
    pod = the(docs, "Deployment")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["controller"]
    c: Doc = pod["containers"][0]
    return c


def parsed_args(docs: list[Doc]) -> dict[str, Any]:
    args = container(docs)["args"]
    try:
        return vars(parse_args(args))
    except SystemExit:
        raise AssertionError(f"aigw-controller rejects the chart's args {args}") from None


# --- lint and package


@pytest.mark.parametrize("chart", [CHART, CRD_CHART], ids=lambda c: c.name)
def test_helm_lint_strict(helm: Helm, chart: Path) -> None:
    done = helm.run("lint", "--strict", str(chart))
    assert "0 chart(s) failed" in done.stdout, done.stdout


def test_make_helm_lint_lints_both_charts(helm: Helm) -> None:
    make = ["make", "-s", "helm-lint", f"HELM={helm.binary}"]
    done = subprocess.run(make, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 chart(s) linted, 0 chart(s) failed" in done.stdout, done.stdout
    for chart in (CHART, CRD_CHART):
        assert f"==> Linting {chart.relative_to(ROOT)}" in done.stdout, done.stdout


def test_helm_lint_strict_with_every_value_changed(helm: Helm) -> None:
    done = helm.run("lint", "--strict", str(CHART), *set_args(non_default(namespace="team-a")))
    assert "0 chart(s) failed" in done.stdout, done.stdout


def test_packages_hold_the_schema_and_the_crds(helm: Helm, tmp_path: Path) -> None:
    helm.run("package", str(CHART), str(CRD_CHART), "--destination", str(tmp_path))
    packages = {p.name: p for p in tmp_path.iterdir()}
    assert set(packages) == {"ai-gateway-py-0.1.0.tgz", "ai-gateway-py-crds-0.1.0.tgz"}
    with tarfile.open(packages["ai-gateway-py-crds-0.1.0.tgz"]) as tgz:
        crds = {Path(n).name for n in tgz.getnames() if "/crds/" in n}
    assert crds == {p.name for p in (CRD_CHART / "crds").glob("*.yaml")}
    assert crds == {p.name for p in (ROOT / "config" / "crd").glob("*.yaml")}
    with tarfile.open(packages["ai-gateway-py-0.1.0.tgz"]) as tgz:
        assert "ai-gateway-py/values.schema.json" in tgz.getnames()
    # The package renders what the directory renders.
    packaged = helm.template(packages["ai-gateway-py-0.1.0.tgz"], namespace=NAMESPACE)
    assert packaged == helm.template(CHART, namespace=NAMESPACE)


def test_the_helm_version_is_the_one_hack_builds(helm: Helm) -> None:
    script = (ROOT / "hack" / "setup-helm.sh").read_text()
    m = re.search(r'^HELM_VERSION="\$\{HELM_VERSION:-([0-9.]+)\}"$', script, re.MULTILINE)
    assert m and m.group(1) == HELM_VERSION
    assert helm.run("version", "--short").stdout.startswith(f"v{HELM_VERSION}")


# --- every flag a value


def test_each_value_becomes_its_flag(helm: Helm) -> None:
    docs = helm.template(CHART, *set_args(flag_values()), namespace="team-a")
    got = parsed_args(docs)
    for option, (key, _, want) in FLAGS.items():
        assert got[option] == want, f"controller.{key} did not become --{option.replace('_', '-')}={want}"
    defaults = parsed_args(helm.template(CHART, namespace="team-a"))
    for option in FLAGS:
        assert got[option] != defaults[option], f"the chart's default {option} is FLAGS' non-default value"


def test_extra_args_come_last_and_win(helm: Helm) -> None:
    docs = helm.template(CHART, *set_args(non_default(namespace="team-a")), namespace="team-a")
    assert container(docs)["args"][-1] == "--log-level=debug"
    assert parsed_args(docs)["log_level"] == "debug"


@pytest.mark.parametrize(
    ("sets", "kinds"),
    [
        ({"rbac.create": False, "serviceAccount.create": False}, {"Deployment", "Service"}),
        ({"serviceAccount.create": False}, {"Deployment", "Service", "ClusterRole", "ClusterRoleBinding",
                                            "Role", "RoleBinding"}),
        ({"controller.leaderElect": False}, {"Deployment", "Service", "ServiceAccount", "ClusterRole",
                                             "ClusterRoleBinding"}),
    ],
    ids=["no-rbac-no-sa", "own-sa", "no-leader-election"],
)  # fmt: skip
def test_rbac_and_the_service_account_can_be_left_to_the_platform(
    helm: Helm, sets: dict[str, Any], kinds: set[str]
) -> None:
    docs = helm.template(
        CHART, *set_args({**sets, "serviceAccount.name": "platform-sa"}), namespace=NAMESPACE
    )
    assert {d["kind"] for d in docs} == kinds
    assert the(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-sa"
    for binding in (d for d in docs if d["kind"].endswith("Binding")):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "platform-sa", "namespace": NAMESPACE}
        ]
    assert parsed_args(docs)["leader_elect"] == sets.get("controller.leaderElect", True)


def test_metrics_port_0_disables_metrics(helm: Helm) -> None:
    docs = helm.template(CHART, "--set", "controller.metricsPort=0", namespace=NAMESPACE)
    assert parsed_args(docs)["metrics_bind_address"] == "0"
    assert "metrics" not in {p["name"] for p in container(docs)["ports"]}
    assert "metrics" not in {p["name"] for p in the(docs, "Service")["spec"]["ports"]}


def test_images_default_to_the_one_make_deploy_and_kind_up_use(helm: Helm) -> None:
    docs = helm.template(CHART, namespace=NAMESPACE)
    img = re.search(r"^IMG \?= (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    assert img
    assert container(docs)["image"] == img.group(1) == parsed_args(docs)["extproc_image"]
    docs = helm.template(CHART, "--set", "image.repository=r.test/aigw,image.tag=v2", namespace=NAMESPACE)
    assert container(docs)["image"] == parsed_args(docs)["extproc_image"] == "r.test/aigw:v2"


# --- the default rendering is config/default


def config_default() -> list[Doc]:
    """``make deploy``'s second step, rendered by our kubectl's kustomize (minus the Namespace)."""
    cmd = [str(find_binaries().kubectl), "kustomize", str(ROOT / "config" / "default")]
    text = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return [d for d in yaml.safe_load_all(text) if d and d["kind"] != "Namespace"]


def test_the_default_rendering_is_what_make_deploy_installs(helm: Helm) -> None:
    chart = by_kind(helm.template(CHART, release="aigw", namespace=NAMESPACE))
    config = by_kind(config_default())
    assert set(chart) == set(config)
    for key, want in config.items():
        got = chart[key]
        assert got["metadata"].get("namespace") == want["metadata"].get("namespace"), key
        for field in ("rules", "roleRef", "subjects"):
            assert got.get(field) == want.get(field), f"{key}: {field}"
    deployment = chart[("Deployment", "ai-gateway-controller")]
    want_deployment = config[("Deployment", "ai-gateway-controller")]
    pod, want_pod = deployment["spec"]["template"]["spec"], want_deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == want_deployment["spec"]["replicas"]
    assert {k: v for k, v in pod.items() if k != "containers"} == {
        k: v for k, v in want_pod.items() if k != "containers"
    }
    got_c, want_c = pod["containers"][0], want_pod["containers"][0]
    assert {k: v for k, v in got_c.items() if k != "args"} == {k: v for k, v in want_c.items() if k != "args"}
    assert vars(parse_args(got_c["args"])) == vars(parse_args(want_c["args"]))
    service, want_service = (
        chart[("Service", "ai-gateway-controller")],
        config[("Service", "ai-gateway-controller")],
    )
    assert service["spec"]["ports"] == want_service["spec"]["ports"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_envoy_gateway_values_point_at_the_charts_service(helm: Helm) -> None:
    docs = helm.template(CHART, namespace=NAMESPACE)
    service = the(docs, "Service")
    fqdn = yaml.safe_load(EG_VALUES.read_text())["config"]["envoyGateway"]["extensionManager"]["service"][
        "fqdn"
    ]
    assert fqdn["hostname"] == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert fqdn["port"] == next(p["port"] for p in service["spec"]["ports"] if p["name"] == "extension")


# --- the schema


@pytest.mark.parametrize(
    ("sets", "named"),
    [
        ({"replicaCount": -1}, "replicaCount"),
        ({"replicaCount": "two"}, "replicaCount"),
        ({"controller.unknownFlag": True}, "unknownFlag"),
        ({"contoller": {"logLevel": "debug"}}, "contoller"),
        ({"controller.logLevel": "verbose"}, "logLevel"),
        ({"controller.metricsPort": 70000}, "metricsPort"),
        ({"controller.concurrentReconciles": 0}, "concurrentReconciles"),
        ({"controller.extprocAddress": "no-port"}, "extprocAddress"),
        ({"image.pullPolicy": "Sometimes"}, "pullPolicy"),
        ({"extraArgs": ["log-level=debug"]}, "extraArgs"),
        ({"extraArgs": ["--log-levle=debug"]}, "--log-levle=debug"),
        ({"readinessProbe": {"periodSeconds": 5, "httpGet": {"path": "/"}}}, "httpGet"),
        ({"replicaCount": 2, "controller.leaderElect": False}, "controller.leaderElect"),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else v,
)
def test_a_wrong_value_is_refused_with_a_message_naming_it(helm: Helm, sets: Doc, named: str) -> None:
    done = helm.run("template", "aigw", str(CHART), *set_args(sets), check=False)
    assert done.returncode != 0, f"{sets} was accepted"
    assert named in done.stderr, done.stderr
    assert not done.stdout.strip(), "nothing is rendered"


def test_the_readmes_refusal_example_is_what_helm_says(helm: Helm) -> None:
    m = re.search(r"`--set (\S+)` fails with\s+`([^`]+)`", (ROOT / "README.md").read_text())
    assert m, "the README no longer shows what a wrong value gets"
    done = helm.run("template", "aigw", str(CHART), "--set", m.group(1), check=False)
    assert done.returncode != 0 and m.group(2) in done.stderr, done.stderr
