"""The controller chart's renderings on the real API server: with default and with every value changed, they
pass a server-side dry run with strict field validation (a misplaced or misspelt field, a bad probe or port
fails here), and the RBAC the chart renders lets the controller (impersonating its ServiceAccount) take the
samples to Accepted=True and hold its Lease, and nothing more (the same checks as config/rbac's)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import yaml

from tests.integration.controller.rbac import controller_works_with_only, leader_election_works_with_only
from tests.integration.controller.test_deploy import kubectl_resource
from tests.integration.helm.values import CHART, non_default
from tests.realparts.controlplane import ControlPlane
from tests.realparts.dns import DnsServer
from tests.realparts.helm import Helm, set_args

RBAC_KINDS = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


def kubectl_name(doc: dict[str, Any]) -> str:
    """``kubectl -o name`` of ``doc``."""
    return f"{kubectl_resource(doc['kind'])}/{doc['metadata']['name']}"


@pytest.mark.parametrize("changed", [False, True], ids=["defaults", "every-value-changed"])
def test_the_rendering_passes_a_strict_server_side_dry_run(
    helm: Helm, control_plane: ControlPlane, namespace: str, changed: bool
) -> None:
    values = {"fullnameOverride": namespace}
    if changed:
        values = non_default(namespace=namespace, fullname=namespace)
    docs = helm.template(CHART, *set_args(values), namespace=namespace)
    assert {d["kind"] for d in docs} == RBAC_KINDS | {"Deployment", "Service"}
    done = control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "--validate=strict", "-o", "name", "-f", "-",
        input=yaml.safe_dump_all(docs),
    )  # fmt: skip
    assert sorted(done.stdout.split()) == sorted(kubectl_name(d) for d in docs), done.stderr
    assert not done.stderr.strip(), done.stderr  # strict validation warns about nothing either


def chart_rbac(helm: Helm, namespace: str) -> tuple[str, str, list[str]]:
    """The chart's RBAC objects for a release in ``namespace`` (cluster-wide names made unique to it), the
    ServiceAccount's name, and the controller's arguments in the chart's Deployment."""
    docs = helm.template(CHART, "--set", f"fullnameOverride={namespace}", namespace=namespace)
    rbac = [d for d in docs if d["kind"] in RBAC_KINDS]
    assert {d["kind"] for d in rbac} == RBAC_KINDS
    (sa,) = (d["metadata"]["name"] for d in rbac if d["kind"] == "ServiceAccount")
    (deployment,) = (d for d in docs if d["kind"] == "Deployment")
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return yaml.safe_dump_all(rbac), sa, args


async def test_the_controller_works_with_only_the_charts_rbac(
    helm: Helm, control_plane: ControlPlane, namespace: str, dns_server: DnsServer
) -> None:
    rbac, sa, args = await asyncio.to_thread(chart_rbac, helm, namespace)
    await controller_works_with_only(
        rbac,
        controller_args=args,
        control_plane=control_plane,
        namespace=namespace,
        dns_server=dns_server,
        service_account=sa,
    )


async def test_leader_election_works_with_only_the_charts_role(
    helm: Helm, control_plane: ControlPlane, namespace: str
) -> None:
    rbac, sa, _ = await asyncio.to_thread(chart_rbac, helm, namespace)
    await leader_election_works_with_only(
        rbac, control_plane=control_plane, namespace=namespace, service_account=sa
    )
