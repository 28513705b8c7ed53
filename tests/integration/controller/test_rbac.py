"""config/rbac is enough, and no more: the controller runs as its ServiceAccount (impersonated) against the
real API server with only those permissions and config/default's arguments, and does each kind of write it
does in a cluster (``rbac.controller_works_with_only``); with --leader-elect it acquires, renews and releases
its Lease under the leader election Role, which reaches no other Lease."""

from __future__ import annotations

from pathlib import Path

import yaml

from tests.integration.controller.rbac import controller_works_with_only, leader_election_works_with_only
from tests.realparts.controlplane import ControlPlane
from tests.realparts.dns import DnsServer

CONFIG = Path(__file__).resolve().parents[3] / "config"
SERVICE_ACCOUNT = "ai-gateway-controller"


def rbac_for(namespace: str, cp: ControlPlane) -> str:
    """config/rbac with the ServiceAccount in ``namespace`` and cluster-wide names made unique to it."""
    docs = list(yaml.safe_load_all(cp.kubectl("kustomize", str(CONFIG / "rbac")).stdout))
    for d in docs:
        md = d["metadata"]
        if d["kind"] in ("ClusterRole", "ClusterRoleBinding"):
            md["name"] = f"{md['name']}-{namespace}"
        else:
            md["namespace"] = namespace
        if "roleRef" in d and d["roleRef"]["kind"] == "ClusterRole":
            d["roleRef"]["name"] = f"{d['roleRef']['name']}-{namespace}"
        for s in d.get("subjects", []):
            s["namespace"] = namespace
    return yaml.safe_dump_all(docs)


def deployment_args(cp: ControlPlane) -> list[str]:
    """The controller's arguments in config/default's Deployment."""
    docs = yaml.safe_load_all(cp.kubectl("kustomize", str(CONFIG / "default")).stdout)
    (deployment,) = (d for d in docs if d["kind"] == "Deployment")
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


async def test_controller_works_with_only_its_rbac(
    control_plane: ControlPlane, namespace: str, dns_server: DnsServer
) -> None:
    await controller_works_with_only(
        rbac_for(namespace, control_plane),
        controller_args=deployment_args(control_plane),
        control_plane=control_plane,
        namespace=namespace,
        dns_server=dns_server,
        service_account=SERVICE_ACCOUNT,
    )


async def test_leader_election_works_with_only_its_role(control_plane: ControlPlane, namespace: str) -> None:
    await leader_election_works_with_only(
        rbac_for(namespace, control_plane),
        control_plane=control_plane,
        namespace=namespace,
        service_account=SERVICE_ACCOUNT,
    )
