"""Checks that a set of RBAC objects is enough for the controller, and no more: it runs as its ServiceAccount
(impersonated) against the real API server with only those permissions and takes config/samples to
Accepted=True; with --leader-elect it acquires, renews and releases its Lease under the leader election Role,
which reaches no other Lease. Used on config/rbac (test_rbac.py) and on the Helm chart's RBAC
(tests/integration/helm)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from controller.dns import DnsResolver
from controller.gateway import kinds
from controller.gateway.setup import ControllerSettings, setup_controllers
from controller.main import LEADER_ELECTION_ID
from controller.runtime import LEASES, KubeClient, LeaderElectionConfig, Manager, Resource
from controller.runtime.leaderelection import LeaderElector
from controller.translate import BuildOptions
from tests.integration.controller.conftest import GATEWAY_CLASS, apply_yaml, eventually
from tests.realparts.controlplane import ControlPlane
from tests.realparts.dns import DnsServer

CONFIG = Path(__file__).resolve().parents[3] / "config"
PVCS = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")


async def controller_works_with_only(
    rbac: str, *, control_plane: ControlPlane, namespace: str, dns_server: DnsServer, service_account: str
) -> None:
    """Apply ``rbac`` (YAML) and check the controller, as ``service_account`` of ``namespace``, reconciles the
    samples to Accepted=True and is refused anything beyond its roles (PersistentVolumeClaims)."""
    await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-", input=rbac)
    await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-", input=GATEWAY_CLASS)
    sa = f"system:serviceaccount:{namespace}:{service_account}"
    api = client.ApiClient(
        configuration=control_plane.client_configuration(), header_name="Impersonate-User", header_value=sa
    )
    mgr = Manager(api_client=api, health_port=None, graceful_shutdown_timeout=5)
    kube = KubeClient(api)
    with pytest.raises(Exception) as denied:
        await kube.list(PVCS, namespace=namespace)
    assert getattr(denied.value, "status", None) == 403  # least privilege: no access beyond the role
    resolver = DnsResolver(
        nameserver=f"{dns_server.address}:{dns_server.port}", registry=mgr.metrics.registry
    )
    setup_controllers(
        mgr,
        settings=ControllerSettings(
            options=BuildOptions(enable_inference_extension=True),
            watch_namespace=None,
            inference_v1=True,
            inference_objectives=True,
        ),
        resolver=resolver,
    )
    task = asyncio.create_task(mgr.run())
    try:
        dns_server.set_records({f"my-backend-a.{namespace}.svc.cluster.local": ["10.7.0.1"],
                                f"my-backend-b.{namespace}.svc.cluster.local": ["10.7.0.2"]})  # fmt: skip
        for f in ("gateway.yaml", "basic.yaml", "inference_extension.yaml"):
            await apply_yaml(control_plane, namespace, (CONFIG / "samples" / f).read_text())

        async def accepted(res: Resource, name: str, parent: bool = False) -> bool:
            obj = await kube.get(res, name=name, namespace=namespace)
            status = obj.get("status") or {}
            conds = (
                (status.get("parent") or [{}])[0].get("conditions", [])
                if parent
                else status.get("conditions")
            )
            return any(c["type"] == "Accepted" and c["status"] == "True" for c in conds or [])

        for res, name in [
            (kinds.AIGATEWAYROUTES, "basic"), (kinds.AIGATEWAYROUTES, "inference-extension"),
            (kinds.AISERVICEBACKENDS, "openai"), (kinds.AISERVICEBACKENDS, "my-backend-a"),
            (kinds.BACKENDSECURITYPOLICIES, "openai-apikey"), (kinds.INFERENCEMODELS, "mistral"),
        ]:  # fmt: skip
            await eventually(functools.partial(accepted, res, name), within=30)
        await eventually(lambda: accepted(kinds.INFERENCEPOOLS, "my-pool", parent=True), within=30)
        for res in (kinds.HTTPROUTES, kinds.ENVOYEXTENSIONPOLICIES):
            await eventually(functools.partial(_exists, kube, res, namespace), within=30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await api.close()


async def leader_election_works_with_only(
    rbac: str, *, control_plane: ControlPlane, namespace: str, service_account: str
) -> None:
    """Apply ``rbac`` (YAML) and check ``service_account`` of ``namespace`` acquires, renews and releases the
    controller's Lease in ``namespace``, and cannot read any other Lease."""
    await asyncio.to_thread(control_plane.kubectl, "apply", "-f", "-", input=rbac)
    sa = f"system:serviceaccount:{namespace}:{service_account}"
    api = client.ApiClient(
        configuration=control_plane.client_configuration(), header_name="Impersonate-User", header_value=sa
    )
    admin = client.ApiClient(configuration=control_plane.client_configuration())
    cfg = LeaderElectionConfig(
        name=LEADER_ELECTION_ID, namespace=namespace, lease_duration=3.0, renew_deadline=2.0, retry_period=0.5
    )
    elector = LeaderElector(client=KubeClient(api), config=cfg)
    try:
        await asyncio.wait_for(elector.acquire(), timeout=10)  # GET (404), then create
        assert elector.is_leader
        first = await KubeClient(admin).get(LEASES, name=LEADER_ELECTION_ID, namespace=namespace)
        holding = asyncio.create_task(elector.hold())  # renews with PUT every retry_period

        async def renewed() -> bool:
            assert not holding.done(), holding  # LeaderElectionLost: a renewal was refused
            lease = await KubeClient(admin).get(LEASES, name=LEADER_ELECTION_ID, namespace=namespace)
            return bool(lease["spec"]["renewTime"] != first["spec"]["renewTime"])

        await eventually(renewed, within=5)
        holding.cancel()  # releases the Lease (PUT)
        with contextlib.suppress(asyncio.CancelledError):
            await holding
        released = await KubeClient(admin).get(LEASES, name=LEADER_ELECTION_ID, namespace=namespace)
        assert not released["spec"].get("holderIdentity")
        with pytest.raises(Exception) as denied:  # the Role names its one Lease
            await KubeClient(api).get(LEASES, name="some-other-lease", namespace=namespace)
        assert getattr(denied.value, "status", None) == 403
    finally:
        await api.close()
        await admin.close()


async def _exists(kube: KubeClient, res: Resource, namespace: str) -> bool:
    return bool((await kube.list(res, namespace=namespace)).get("items"))
