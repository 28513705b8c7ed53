"""Our controller as a Deployment on the kind cluster (`make kind-up AIGW_KIND_LOCAL=1`): leader election
across two replicas through the Lease its Role allows, and the ext_proc Deployment it writes rolling out when
--extproc-image changes."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.kind.conftest import CACHE, KIND_VERSION, NAMESPACE, docker, kubectl

DEPLOYMENT = "deploy/ai-gateway-controller"
LEASE = "envoy-ai-gateway-controller"
EXTPROC = "app.kubernetes.io/name=ai-eg-extproc,aigateway.envoyproxy.io/gateway-name=ai-gateway"


def holder() -> str:
    """The Pod holding the Lease (its identity is <pod>_<uuid>)."""
    lease = json.loads(kubectl("-n", NAMESPACE, "get", "lease", LEASE, "-o", "json"))
    return str(lease["spec"].get("holderIdentity", "")).partition("_")[0]


def controller_pods() -> set[str]:
    selector = "app.kubernetes.io/name=ai-gateway-controller"
    pods = json.loads(kubectl("-n", NAMESPACE, "get", "pod", "-l", selector, "-o", "json"))["items"]
    return {p["metadata"]["name"] for p in pods if p["metadata"].get("deletionTimestamp") is None}


@pytest.fixture
def two_replicas(cluster: None) -> Iterator[None]:
    kubectl("-n", NAMESPACE, "scale", DEPLOYMENT, "--replicas=2")
    try:
        kubectl("-n", NAMESPACE, "rollout", "status", DEPLOYMENT, "--timeout=180s")
        yield
    finally:
        kubectl("-n", NAMESPACE, "scale", DEPLOYMENT, "--replicas=1")
        kubectl("-n", NAMESPACE, "rollout", "status", DEPLOYMENT, "--timeout=180s")


def test_one_of_two_replicas_leads_and_the_other_takes_over_when_it_goes(two_replicas: None) -> None:
    pods = controller_pods()
    assert len(pods) == 2
    leader = holder()
    assert leader in pods
    kubectl("-n", NAMESPACE, "delete", "pod", leader, "--wait=false")
    deadline = time.monotonic() + 180
    new = leader
    while new in ("", leader) and time.monotonic() < deadline:
        time.sleep(2)
        new = holder()
    assert new not in ("", leader), "no other replica took the Lease"
    assert new in controller_pods()


def extproc_image_arg() -> tuple[int, str]:
    spec = json.loads(kubectl("-n", NAMESPACE, "get", DEPLOYMENT, "-o", "json"))
    args: list[str] = spec["spec"]["template"]["spec"]["containers"][0]["args"]
    [index] = [i for i, a in enumerate(args) if a.startswith("--extproc-image=")]
    return index, args[index].partition("=")[2]


def set_extproc_image(index: int, image: str) -> None:
    patch = [{"op": "replace", "path": f"/spec/template/spec/containers/0/args/{index}",
              "value": f"--extproc-image={image}"}]  # fmt: skip
    kubectl("-n", NAMESPACE, "patch", DEPLOYMENT, "--type=json", "-p", json.dumps(patch))
    kubectl("-n", NAMESPACE, "rollout", "status", DEPLOYMENT, "--timeout=180s")


def extproc_images() -> set[str]:
    deployments = json.loads(kubectl("get", "deploy", "-l", EXTPROC, "-o", "json"))["items"]
    return {d["spec"]["template"]["spec"]["containers"][0]["image"] for d in deployments}


def test_the_extproc_deployment_rolls_out_when_the_controller_is_given_another_image(cluster: None) -> None:
    index, before = extproc_image_arg()
    assert extproc_images() == {before}
    after = "ai-gateway-py:kind-rollout"
    assert docker("tag", before, after).returncode == 0
    kind = next(CACHE.glob(f"kind/{KIND_VERSION}/bin/kind"), None)
    assert kind is not None, "no kind: run `make kind-images`"
    subprocess.run(
        [str(kind), "load", "docker-image", after, "--name", "ai-gateway-py"], check=True, timeout=600
    )
    set_extproc_image(index, after)
    try:
        deadline = time.monotonic() + 180
        while extproc_images() != {after} and time.monotonic() < deadline:
            time.sleep(2)
        assert extproc_images() == {after}
        kubectl("rollout", "status", "deploy", "-l", EXTPROC, "--timeout=180s")
        pods = json.loads(kubectl("get", "pod", "-l", EXTPROC, "-o", "json"))["items"]
        running = [p for p in pods if p["metadata"].get("deletionTimestamp") is None]
        assert running and all(p["spec"]["containers"][0]["image"] == after for p in running)
    finally:
        set_extproc_image(index, before)
