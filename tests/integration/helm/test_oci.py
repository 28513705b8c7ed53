"""The charts as users get them: ``make helm-package``'s archives pushed to a real OCI registry (the CNCF
Distribution registry on loopback), then shown, rendered and installed from ``oci://`` on the real API server,
the way Envoy Gateway's and upstream's charts are installed."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from tests.integration.helm.values import CHART, CRD_CHART, ROOT, eg_values_for, printed_eg_values
from tests.realparts.controlplane import ControlPlane
from tests.realparts.helm import Helm
from tests.realparts.registry import Registry

VERSION = "0.1.0"


@pytest.fixture(scope="module")
def pushed(helm: Helm, registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``make helm-package``'s archives pushed to the registry: the ``oci://`` repository holding them."""
    out = tmp_path_factory.mktemp("charts")
    make = ["make", "-s", "helm-package", f"HELM_CHARTS_DIR={out}", f"HELM={helm.binary}"]
    done = subprocess.run(make, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    repo = f"oci://{registry.host}/charts"
    for name in (CHART.name, CRD_CHART.name):
        done = helm.run("push", str(out / f"{name}-{VERSION}.tgz"), repo, "--plain-http")
        assert f"{registry.host}/charts/{name}:{VERSION}" in done.stdout + done.stderr
    return repo


def test_the_pushed_charts_are_the_ones_in_the_repository(helm: Helm, pushed: str) -> None:
    shown = yaml.safe_load(helm.run("show", "chart", f"{pushed}/{CHART.name}", "--version", VERSION,
                                    "--plain-http").stdout)  # fmt: skip
    assert (shown["name"], shown["version"]) == (CHART.name, VERSION)
    crds = helm.run("show", "crds", f"{pushed}/{CRD_CHART.name}", "--version", VERSION, "--plain-http").stdout
    want = {p.name: yaml.safe_load(p.read_text()) for p in (CRD_CHART / "crds").glob("*.yaml")}
    got = [d for d in yaml.safe_load_all(crds) if d]
    by_name = {d["metadata"]["name"]: d for d in want.values()}
    assert {d["metadata"]["name"]: d for d in got} == by_name and len(got) == len(want)
    from_oci = helm.template(f"{pushed}/{CHART.name}", "--version", VERSION, "--plain-http")
    assert from_oci == helm.template(CHART)


def test_install_from_oci_on_the_api_server(
    helm: Helm, pushed: str, control_plane: ControlPlane, namespace: str
) -> None:
    cluster = helm.with_kubeconfig(control_plane.kubeconfig)
    cluster.run(
        "install", "aigw", f"{pushed}/{CHART.name}", "--version", VERSION, "--plain-http",
        "--namespace", namespace, "--set", f"fullnameOverride={namespace}",
    )  # fmt: skip
    try:
        history = json.loads(cluster.run("history", "aigw", "--namespace", namespace, "-o", "json").stdout)
        assert [(h["status"], h["chart"]) for h in history] == [("deployed", f"{CHART.name}-{VERSION}")]
        got = control_plane.kubectl("get", f"deployment/{namespace}", "--namespace", namespace, "-o", "name")
        assert got.stdout.strip() == f"deployment.apps/{namespace}"
        # The notes carry Envoy Gateway's values (the chart's file), pointed at this release's Service.
        notes = cluster.run("get", "notes", "aigw", "--namespace", namespace).stdout
        assert printed_eg_values(notes) == eg_values_for(service=namespace, namespace=namespace)
    finally:
        cluster.run("uninstall", "aigw", "--namespace", namespace)
