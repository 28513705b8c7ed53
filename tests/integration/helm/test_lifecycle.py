"""``helm install``, ``helm upgrade`` and ``helm uninstall`` of both charts against a real API server (no
kubelet: the Deployment gets no Pods, which Helm does not wait for unless asked).

One story, in order, on a control plane that starts without our CRDs, installing with the README's own
``helm install`` commands (its placeholders filled):
1. the CRD chart creates our five CRDs, and they become Established;
2. the controller chart creates every object it renders, in its namespace, with the image asked for, and
   its notes print exactly the Envoy Gateway values the chart ships (the README's namespace is theirs);
3. a wrong value is refused at ``helm upgrade`` by the schema, naming it, and changes nothing;
4. ``helm upgrade`` with other values updates every object in place (same UIDs) to the new values, and the
   README's command for the CRDs after an upgrade applies cleanly over the chart's;
5. ``helm uninstall`` of the controller removes every object; of the CRD chart, it leaves the CRDs (Helm's
   ``crds/`` rule) and the custom resources in them.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml

from controller.main import parse_args
from tests.integration.controller import manifests
from tests.integration.controller.test_deploy import kubectl_resource
from tests.integration.helm.values import (
    CHART,
    CRD_CHART,
    EG_VALUES,
    README,
    README_PLACEHOLDERS,
    ROOT,
    eg_values_for,
    option_value,
    printed_eg_values,
    readme_helm_installs,
)
from tests.realparts.controlplane import ControlPlane
from tests.realparts.helm import Helm, set_args

INSTALLS = readme_helm_installs()
RELEASE_NS = option_value(INSTALLS["aigw"], "-n", "--namespace", default="default")
CRD_RELEASE_NS = option_value(INSTALLS["aigw-crds"], "-n", "--namespace", default="default")
CRDS = sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in (CRD_CHART / "crds").glob("*.yaml"))


@pytest.fixture(scope="module")
def cluster_helm(helm: Helm, bare_control_plane: ControlPlane) -> Helm:
    return helm.with_kubeconfig(bare_control_plane.kubeconfig)


def readme_install(helm: Helm, release: str) -> None:
    """Run the README's ``helm install`` of ``release`` (its chart paths are the repository's)."""
    args = INSTALLS[release]
    helm.run(*(str(ROOT / a) if a.startswith("charts/") else a for a in args))


def kubectl_json(cp: ControlPlane, *args: str) -> Any:
    return json.loads(cp.kubectl(*args, "-o", "json").stdout)


def release_objects(helm: Helm, release: str) -> list[dict[str, Any]]:
    manifest = helm.run("get", "manifest", release, "--namespace", RELEASE_NS).stdout
    return [d for d in yaml.safe_load_all(manifest) if d]


def ref(doc: dict[str, Any]) -> list[str]:
    """kubectl arguments naming ``doc``."""
    kind = doc["kind"]
    name = f"{kubectl_resource(kind)}/{doc['metadata']['name']}"
    ns = doc["metadata"].get("namespace")
    return [name, "--namespace", ns] if ns else [name]


def live(cp: ControlPlane, objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``kind/name`` -> the object as the API server has it."""
    return {f"{d['kind']}/{d['metadata']['name']}": kubectl_json(cp, "get", *ref(d)) for d in objects}


def controller_args(cp: ControlPlane) -> dict[str, Any]:
    deployment = kubectl_json(cp, "get", "deployment/ai-gateway-controller", "--namespace", RELEASE_NS)
    return vars(parse_args(deployment["spec"]["template"]["spec"]["containers"][0]["args"]))


def test_install_upgrade_uninstall(cluster_helm: Helm, bare_control_plane: ControlPlane) -> None:
    """The steps of the module docstring, in order; each leaves ``state`` for the next."""
    state: dict[str, Any] = {}
    for step in (
        the_crd_chart_creates_our_crds,
        the_controller_chart_creates_every_object,
        a_wrong_value_is_refused_at_upgrade_and_changes_nothing,
        upgrade_updates_every_object_in_place,
        uninstall_removes_the_controller_and_leaves_the_crds,
    ):
        step(cluster_helm, bare_control_plane, state)


def the_crd_chart_creates_our_crds(
    cluster_helm: Helm, bare_control_plane: ControlPlane, state: dict[str, Any]
) -> None:
    cp = bare_control_plane
    assert not cp.kubectl("get", "crd", *CRDS, check=False).stdout.strip(), "our CRDs exist before the chart"
    readme_install(cluster_helm, "aigw-crds")
    cp.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{c}" for c in CRDS))
    # A custom resource in them, which must outlive both releases.
    cp.kubectl("create", "namespace", "keep")
    cp.kubectl("apply", "--namespace", "keep", "-f", "-", input=manifests.backend("keep-me"))
    cr = kubectl_json(cp, "get", "aiservicebackend/keep-me", "--namespace", "keep")
    state["cr"] = cr["metadata"]["uid"]


def the_controller_chart_creates_every_object(
    cluster_helm: Helm, bare_control_plane: ControlPlane, state: dict[str, Any]
) -> None:
    readme_install(cluster_helm, "aigw")
    objects = release_objects(cluster_helm, "aigw")
    assert {d["kind"] for d in objects} == {
        "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service", "Deployment",
    }  # fmt: skip
    first = live(bare_control_plane, objects)
    for key, obj in first.items():
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "aigw", key
        if obj["kind"] not in ("ClusterRole", "ClusterRoleBinding"):
            assert obj["metadata"]["namespace"] == RELEASE_NS, key
    assert controller_args(bare_control_plane)["log_level"] == "info"
    image = "{<registry>}/ai-gateway-py:{<tag>}".format_map(README_PLACEHOLDERS)
    pod = first["Deployment/ai-gateway-controller"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == image
    assert controller_args(bare_control_plane)["extproc_image"] == image
    notes = cluster_helm.run("get", "notes", "aigw", "--namespace", RELEASE_NS).stdout
    assert printed_eg_values(notes) == eg_values_for(service="ai-gateway-controller", namespace=RELEASE_NS)
    assert printed_eg_values(notes) == yaml.safe_load(EG_VALUES.read_text()), (
        "the README's install and the Envoy Gateway values it gives disagree on where the controller is"
    )
    state["objects"], state["first"] = objects, first


def a_wrong_value_is_refused_at_upgrade_and_changes_nothing(
    cluster_helm: Helm, bare_control_plane: ControlPlane, state: dict[str, Any]
) -> None:
    done = cluster_helm.run(
        "upgrade", "aigw", str(CHART), "--namespace", RELEASE_NS, *set_args({"replicaCount": -2}), check=False
    )
    assert done.returncode != 0 and "replicaCount" in done.stderr, done.stderr
    now = live(bare_control_plane, state["objects"])
    for key, obj in state["first"].items():
        assert now[key]["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"], key
    history = json.loads(cluster_helm.run("history", "aigw", "--namespace", RELEASE_NS, "-o", "json").stdout)
    assert [h["revision"] for h in history] == [1]


def upgrade_updates_every_object_in_place(
    cluster_helm: Helm, bare_control_plane: ControlPlane, state: dict[str, Any]
) -> None:
    changed = {
        "replicaCount": 2,
        "controller.logLevel": "debug",
        "controller.concurrentReconciles": 8,
        "controller.metricsPort": 9090,
        "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}, "limits": {"memory": "768Mi"}},
        "serviceAccount.annotations": {"example.test/upgraded": "yes"},
        "service.annotations": {"example.test/upgraded": "yes"},
    }
    cluster_helm.run("upgrade", "aigw", str(CHART), "--namespace", RELEASE_NS, *set_args(changed))
    objects = release_objects(cluster_helm, "aigw")
    now = live(bare_control_plane, objects)
    first = state["first"]
    assert set(now) == set(first), "upgrade added or removed objects"
    for key, obj in now.items():
        assert obj["metadata"]["uid"] == first[key]["metadata"]["uid"], f"{key} was replaced, not updated"
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == "aigw"
    for key in ("Deployment/ai-gateway-controller", "Service/ai-gateway-controller"):
        assert now[key]["metadata"]["resourceVersion"] != first[key]["metadata"]["resourceVersion"], key
    deployment = now["Deployment/ai-gateway-controller"]
    assert deployment["spec"]["replicas"] == 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == changed["resources"]
    assert {"name": "metrics", "containerPort": 9090, "protocol": "TCP"} in container["ports"]
    args = controller_args(bare_control_plane)
    assert args["log_level"] == "debug"
    assert args["concurrent_reconciles"] == 8
    assert args["metrics_bind_address"] == ":9090"
    metrics = [p for p in now["Service/ai-gateway-controller"]["spec"]["ports"] if p["name"] == "metrics"]
    assert [p["port"] for p in metrics] == [9090]
    for key in ("Service/ai-gateway-controller", "ServiceAccount/ai-gateway-controller"):
        assert now[key]["metadata"]["annotations"]["example.test/upgraded"] == "yes", key
    history = json.loads(cluster_helm.run("history", "aigw", "--namespace", RELEASE_NS, "-o", "json").stdout)
    assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]
    # Helm leaves crds/ alone on upgrade; the README's command for them applies over what the chart created.
    m = re.search(r"`kubectl (apply --server-side -f (charts/ai-gateway-py-crds/crds))`", README.read_text())
    assert m, "the README no longer says how to update the CRDs after an upgrade"
    applied = bare_control_plane.kubectl(*m.group(1).split()[:-1], str(ROOT / m.group(2)), "-o", "name")
    assert sorted(applied.stdout.split()) == [
        f"customresourcedefinition.apiextensions.k8s.io/{c}" for c in CRDS
    ]


def uninstall_removes_the_controller_and_leaves_the_crds(
    cluster_helm: Helm, bare_control_plane: ControlPlane, state: dict[str, Any]
) -> None:
    cp = bare_control_plane
    cluster_helm.run("uninstall", "aigw", "--namespace", RELEASE_NS)
    for obj in state["objects"]:
        got = cp.kubectl("get", *ref(obj), "--ignore-not-found", "-o", "name", check=False)
        assert got.returncode == 0 and not got.stdout.strip(), f"{obj['kind']} {obj['metadata']['name']} left"
    cluster_helm.run("uninstall", "aigw-crds", "--namespace", CRD_RELEASE_NS)
    releases = cluster_helm.run("list", "--all-namespaces", "-q").stdout.split()
    assert releases == []
    for crd in CRDS:
        assert kubectl_json(cp, "get", f"crd/{crd}")["metadata"].get("deletionTimestamp") is None, crd
    kept = kubectl_json(cp, "get", "aiservicebackend/keep-me", "--namespace", "keep")
    assert kept["metadata"]["uid"] == state["cr"]


def test_install_refuses_a_wrong_value_and_creates_nothing(
    cluster_helm: Helm, bare_control_plane: ControlPlane
) -> None:
    done = cluster_helm.run(
        "install", "refused", str(CHART), "--namespace", "refused", "--create-namespace",
        *set_args({"controller": {"leaderElect": True, "enableInferenceExtensions": True}}), check=False,
    )  # fmt: skip
    assert done.returncode != 0 and "enableInferenceExtensions" in done.stderr, done.stderr
    assert "refused" not in cluster_helm.run("list", "--all-namespaces", "-q").stdout.split()
    got = bare_control_plane.kubectl("get", "namespace/refused", "--ignore-not-found", "-o", "name")
    assert not got.stdout.strip(), "a refused install created its namespace"
